"""Fake exchanges for tests, benchmarks and soaks, speaking the venues' wire formats on 127.0.0.1. Product code never
imports them."""
