"""cdomain.cli"""
