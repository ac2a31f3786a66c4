"""JPEG coefficient codec: read quantized DCT coefficients, tables, quality."""
