"""Property: any file Pillow or libjpeg writes decodes natively exactly as libjpeg decodes it."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import jpeglib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdomain.jpeg.reader import read_coefficients
from tests.jpeg.native_corpus import KINDS, _quiet_stderr, differences, make_image, pillow_bytes

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

restarts = st.one_of(
    st.none(),
    st.tuples(st.just("restart_marker_blocks"), st.integers(1, 40)),
    st.tuples(st.just("restart_marker_rows"), st.integers(1, 4)),
)


@SETTINGS
@given(
    height=st.integers(1, 80),
    width=st.integers(1, 80),
    quality=st.integers(1, 100),
    subsampling=st.sampled_from(["4:4:4", "4:2:2", "4:2:0", "gray"]),
    progressive=st.booleans(),
    optimize=st.booleans(),
    restart=restarts,
    kind=st.sampled_from(KINDS),
    seed=st.integers(0, 2**16),
)
def test_pillow_files(height, width, quality, subsampling, progressive, optimize, restart,
                      kind, seed):
    options = dict(quality=quality, progressive=progressive, optimize=optimize)
    if subsampling != "gray":
        options["subsampling"] = subsampling
    if restart:
        options[restart[0]] = restart[1]
    data = pillow_bytes(make_image(height, width, kind, seed), gray=subsampling == "gray",
                        **options)
    assert not differences(read_coefficients(data), read_coefficients(data, backend="jpeglib"))


SAMPLINGS = [((2, 2), (1, 1), (1, 1)), ((1, 4), (1, 1), (1, 1)), ((2, 1), (1, 1), (1, 1)),
             ((1, 2), (1, 1), (1, 1)), ((2, 4), (1, 1), (1, 1)), ((4, 2), (1, 1), (1, 1)),
             ((1, 1), (2, 2), (2, 2)), ((2, 2), (2, 1), (2, 1)), ((1, 1), (1, 1), (1, 1))]


@SETTINGS
@given(
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    quality=st.integers(1, 100),
    sampling=st.sampled_from(SAMPLINGS),
    flags=st.sampled_from([[], ["+OPTIMIZE_CODING"], ["+PROGRESSIVE_MODE"]]),
    kind=st.sampled_from(KINDS),
    seed=st.integers(0, 2**16),
)
def test_libjpeg_files(height, width, quality, sampling, flags, kind, seed):
    image = jpeglib.from_spatial(make_image(height, width, kind, seed))
    image.samp_factor = sampling
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), _quiet_stderr():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "h.jpg"
        image.write_spatial(str(path), qt=quality, flags=flags)
        data = path.read_bytes()
    assert not differences(read_coefficients(data), read_coefficients(data, backend="jpeglib"))
