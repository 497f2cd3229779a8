"""ManifestParams (release.toml's [enclave] table) validation, enclave sizes, and the template's markers."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from enclavefl.errors import ConfigError
from enclavefl.tee.gramine_pkg import ManifestParams, parse_enclave_size
from enclavefl.tee.gramine_pkg.manifest import enclave_size_for, fill_markers, format_enclave_size
from enclavefl.tee.gramine_pkg.threads import required_max_threads


def make(**changes: Any) -> ManifestParams:
    return ManifestParams(**changes)


@pytest.mark.parametrize(("text", "size"), [("256M", 2**28), ("512M", 2**29), ("1G", 2**30), ("4g", 2**32)])
def test_power_of_two_sizes_parse(text: str, size: int) -> None:
    assert parse_enclave_size(text) == size


@pytest.mark.parametrize("text", ["3G", "768M", "1.5G", "", "G", "-1G", "1GB", "0M", "128M"])
def test_sizes_that_are_not_a_power_of_two_or_too_small_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="enclave_size"):
        parse_enclave_size(text)


def test_defaults_are_a_production_configuration() -> None:
    params = make()

    assert (params.enclave_size, params.log_level, params.port) == ("1G", "error", 7443)
    assert params.max_threads is None  # derived from the pool sizes
    assert params.thread_slots == required_max_threads(rpc_workers=params.rpc_workers)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("enclave_size", "3G", "power of two"),
        ("max_threads", 3, "max_threads"),
        ("max_threads", 39, "max_threads must be between 40"),
        ("rpc_workers", 0, "rpc_workers"),
        ("isv_prod_id", 65536, "isv_prod_id"),
        ("isv_svn", -1, "isv_svn"),
        ("port", 0, "port"),
        ("log_level", "debug", "log_level"),
        ("log_level", "warning", "log_level"),
        ("port", True, "integer"),
        ("rpc_workers", "8", "integer"),
    ],
)
def test_invalid_parameters_are_refused_with_the_field_named(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make(**{field: value})


def test_params_are_frozen() -> None:
    params = make()

    with pytest.raises(dataclasses.FrozenInstanceError):
        params.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("needed", "size"),
    [(1, "256M"), (256 << 20, "256M"), ((256 << 20) + 1, "512M"), (700 << 20, "1G"), ((4 << 30) + 1, "8G")],
)
def test_enclave_size_for_is_the_smallest_power_of_two_that_holds_it(needed: int, size: str) -> None:
    assert enclave_size_for(needed) == size
    assert parse_enclave_size(size) >= needed


def test_sizes_format_back_to_what_parses() -> None:
    for size in (2**28, 2**30, 2**33, 2**40):
        assert parse_enclave_size(format_enclave_size(size)) == size


def test_fill_markers_refuses_unknown_or_leftover_markers() -> None:
    with pytest.raises(ConfigError, match="no marker"):
        fill_markers("a @X@ b", {"Y": "1"})
    with pytest.raises(ConfigError, match="unfilled"):
        fill_markers("a @X@ @Z@", {"X": "1"})
