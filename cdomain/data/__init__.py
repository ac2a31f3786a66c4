"""Datasets and loaders: embedded generated sets, ImageFolder trees, DCT-domain transforms."""
