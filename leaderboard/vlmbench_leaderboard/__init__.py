"""The leaderboard: third-party submission bundles, their verification, and the published comparison."""
