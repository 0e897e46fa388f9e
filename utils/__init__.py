"""Helpers shared by data_maker.py, train.py and eval.py."""
