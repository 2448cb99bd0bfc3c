"""Local stack for tests, the demo and benchmarks: real servers on free loopback ports."""
