"""Networks for compressed-domain inputs (installed as ``cdomain.models``)."""
