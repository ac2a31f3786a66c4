"""cdomain.train"""
