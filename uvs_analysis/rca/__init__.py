"""Root-cause analysis: evidence, rules and the five-whys tree."""
