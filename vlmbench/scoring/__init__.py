"""Scoring: scorers (rule parsers and judges) turn responses into verdicts; metrics aggregate verdicts."""
