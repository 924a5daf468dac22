"""Brokers behind one interface: submit an order, learn its fills. Only the paper broker exists so far."""
