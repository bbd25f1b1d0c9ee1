"""Analysis tools: benchmarks, visualisation, config diffs and leaderboards."""
