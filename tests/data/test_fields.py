"""Field-of-view readers: TIFF, OME-TIFF, ImageJ and OME-Zarr axes, channels by index or name, errors."""

import numpy as np
import pytest
import tifffile

from statcell_tf.data.fields import channel_index, read_channel, read_channels, read_header
from statcell_tf.errors import UserError

RNG = np.random.default_rng(0)
STACK = RNG.integers(0, 4000, (3, 5, 24, 32)).astype(np.uint16)  # (C, Z, Y, X)


def test_plain_tiffs_2d_and_unnamed_stack(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", STACK[0, 0])
    header = read_header(tmp_path / "a.tif")
    assert header.spatial_shape() == (24, 32) and channel_index(header, None) is None
    np.testing.assert_array_equal(read_channel(header, None), STACK[0, 0])
    # A multi-page TIFF without axis names: refused until the user says what its pages are (a
    # z-stack), or channels when the row names an index.
    tifffile.imwrite(tmp_path / "q.tif", STACK[0], metadata=None)
    header = read_header(tmp_path / "q.tif")
    with pytest.raises(UserError, match=r"q.tif: a multi-page file without axis names \(5 pages\).*--pages z"):
        header.spatial_shape()
    stack = read_header(tmp_path / "q.tif", pages="z")
    assert stack.axes == "?YX" and stack.spatial_shape() == (5, 24, 32)
    np.testing.assert_array_equal(read_channel(stack, None), STACK[0])
    assert read_header(tmp_path / "q.tif", pages="channels").spatial_shape() == (24, 32)
    index = channel_index(header, "3")
    assert index == 3 and header.spatial_shape(True) == (24, 32)
    np.testing.assert_array_equal(read_channel(header, index), STACK[0, 3])


def test_ome_tiff_channels_by_index_and_name(tmp_path):
    path = tmp_path / "f.ome.tif"
    tifffile.imwrite(path, STACK, ome=True, metadata={"axes": "CZYX", "Channel": {"Name": ["dna", "pro", "mem"]}})
    header = read_header(path)
    assert header.axes == "CZYX" and header.channel_names == ("dna", "pro", "mem")
    assert channel_index(header, "pro") == 1 and channel_index(header, 2) == 2
    pro, mem = read_channels(header, [1, 2])
    np.testing.assert_array_equal(pro, STACK[1])
    np.testing.assert_array_equal(mem, STACK[2])
    with pytest.raises(UserError, match=r"has 3 channels \(dna, pro, mem\).*channel index in column pro_channel"):
        channel_index(header, None, "column pro_channel")
    with pytest.raises(UserError, match=r"from 0 to 2 .*Received: 3"):
        channel_index(header, 3)
    with pytest.raises(UserError, match=r"channel name of .*\(dna, pro, mem\). Received: 'actin'"):
        channel_index(header, "actin")


def test_imagej_zcyx_and_time_series(tmp_path):
    tifffile.imwrite(tmp_path / "ij.tif", np.ascontiguousarray(STACK.transpose(1, 0, 2, 3)), imagej=True,
                     metadata={"axes": "ZCYX"})
    header = read_header(tmp_path / "ij.tif")
    assert header.axes == "ZCYX"
    np.testing.assert_array_equal(read_channel(header, 2), STACK[2])
    tifffile.imwrite(tmp_path / "t.ome.tif", STACK[:, :2], ome=True, metadata={"axes": "TZYX"})
    with pytest.raises(UserError, match="is a time series"):
        read_header(tmp_path / "t.ome.tif")


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_header(tmp_path / "none.tif")
    (tmp_path / "x.png").write_bytes(b"png")
    with pytest.raises(UserError, match=r"unsupported image file; expected .tif.*Received: .png"):
        read_header(tmp_path / "x.png")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage that is not a TIFF")
    with pytest.raises(UserError, match="broken.tif is not a readable TIFF"):
        read_header(tmp_path / "broken.tif")
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match="is a folder but not a zarr store"):
        read_header(tmp_path / "folder")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_level_zero(tmp_path, version):
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "f.ome.zarr"
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space"} for a in "zyx"
    ]
    group = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    data = STACK[None]  # (T=1, C, Z, Y, X)
    group.create_array("0", shape=data.shape, dtype=data.dtype, chunks=(1, 1, 5, 24, 32))[:] = data
    coarse = data[..., ::2, ::2]
    group.create_array("1", shape=coarse.shape, dtype=data.dtype)[:] = coarse
    multiscales = [{"version": version, "axes": axes, "datasets": [{"path": "0"}, {"path": "1"}]}]
    omero = {"channels": [{"label": n} for n in ("dna", "pro", "mem")]}
    if version == "0.5":
        group.attrs["ome"] = {"version": version, "multiscales": multiscales, "omero": omero}
    else:
        group.attrs.update({"multiscales": multiscales, "omero": omero})
    header = read_header(path)
    assert header.kind == "zarr" and header.axes == "CZYX" and header.shape == (3, 5, 24, 32)
    assert header.channel_names == ("dna", "pro", "mem")
    np.testing.assert_array_equal(read_channel(header, channel_index(header, "mem")), STACK[2])
    # A plain zarr array (no NGFF metadata), 2D.
    plain = zarr.open_array(tmp_path / "plain.zarr", mode="w", shape=(24, 32), dtype="uint16")
    plain[:] = STACK[0, 0]
    header = read_header(tmp_path / "plain.zarr")
    np.testing.assert_array_equal(read_channel(header, None), STACK[0, 0])
    # A group without multiscales is not an image.
    zarr.open_group(tmp_path / "empty.zarr", mode="w")
    with pytest.raises(UserError, match="without OME-Zarr multiscales metadata"):
        read_header(tmp_path / "empty.zarr")
