"""cdomain.data"""
