"""cdomain: deep learning directly on compressed images."""
