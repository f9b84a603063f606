"""Every Zarr reader, xarray first: no warning, every array a data variable, nothing dropped by a reduction."""

from __future__ import annotations

import warnings

import xarray as xr

import saldata
from saldata.schemas.store import ARRAYS


def test_open_zarr_sees_every_array_as_data_and_warns_of_nothing(demo_output):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(demo_output / "features.zarr")
    assert sorted(ds.data_vars) == sorted(spec.name for spec in ARRAYS)
    assert not set(ds.coords) & {spec.name for spec in ARRAYS}
    assert "hidden" in ds.mean(dim="token").data_vars  # a coordinate named hidden would vanish here


def test_no_array_shares_a_name_with_a_dimension():
    dims = {d for spec in ARRAYS for d in spec.dims}
    assert not dims & {spec.name for spec in ARRAYS}


def test_saldata_to_xarray_keeps_hidden(demo_output):
    ds = saldata.open(demo_output).to_xarray()
    assert "hidden" in ds.data_vars and ds["hidden"].dims == ("image", "token", "layer", "hidden_dim")
    assert "hidden" in ds.mean(dim="token").data_vars
