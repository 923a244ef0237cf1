"""Test helpers shipped for plugin authors: a fault-injecting OpenAI-compatible server, tiny random-weight VLM builders and a mock backend."""
