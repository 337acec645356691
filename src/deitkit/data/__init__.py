"""Datasets: the five input layouts read into one representation, validation, import, samples."""
