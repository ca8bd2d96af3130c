"""``dipkit.datasets``: the paper's benchmark sets by name, offline.

Nothing here touches the network: an autouse fixture makes ``pooch.retrieve`` and socket
connections fail the test, and points the cache at a temporary folder. The fetch path runs with
``pooch.retrieve`` replaced by fakes (one serving files made from ``../shared/data``, one
failing as an offline machine does). The conversions are checked pixel for pixel against the
copies in ``../shared/data``, whose README and UPSTREAM.md state the recipe.
"""

import hashlib
import shutil
import socket
import urllib.error
from pathlib import Path, PurePosixPath

import numpy as np
import pooch
import pytest
import requests
from PIL import Image

from dipkit import DipkitError, datasets, images
from dipkit.cli import main
from test_cli import check_one_line_error

#: The benchmark images beside the repository (README.md and UPSTREAM.md there).
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared():
    if not all((SHARED / name).is_dir() for name in datasets.SETS):
        pytest.skip(f"the paper's benchmark images are absent: {SHARED} (with set9/, classic5/, "
                    f"bernoulli11/) is needed to check the sets and their conversions")
    return SHARED


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network, no DIPKIT_DATA, and a cache folder of the test's own."""
    def no_download(*args, **kwargs):
        pytest.fail(f"tried to download: pooch.retrieve{args}")

    def no_connect(*args, **kwargs):
        pytest.fail(f"tried to open a connection: {args}")

    monkeypatch.setattr(pooch, "retrieve", no_download)
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.delenv(datasets.ENV, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setattr(datasets, "cache_dir", lambda: cache)
    return cache


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- the registry ------------------------------------------------------------------------------

def test_registry_is_upstream_md():
    """25 images of commit ed2d371 (the masks' .h5 files are regenerated, not fetched)."""
    assert datasets.COMMIT == "ed2d37185dc94a7cd78656d19fed28b29ba0b1b8"
    assert datasets.BASE_URL == ("https://raw.githubusercontent.com/shizenglin/Measure-and-Control-"
                                 "Spectral-Bias/ed2d37185dc94a7cd78656d19fed28b29ba0b1b8/")
    assert [len(datasets.FILES[name]) for name in datasets.SETS] == [9, 5, 11]
    assert len(datasets.REGISTRY) == 25
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in datasets.REGISTRY.values())
    assert not any(p.endswith(".h5") for p in datasets.REGISTRY)


def test_registry_lists_the_shared_folders_and_set9_is_byte_identical(shared):
    for name in datasets.SETS:
        assert sorted(datasets._outputs(name)) == sorted(f.name for f in (shared / name).iterdir()), name
    for upstream, digest in datasets.FILES["set9"].items():
        assert sha256(shared / "set9" / PurePosixPath(upstream).name) == digest, upstream


# --- (1) the sets by name from a local copy ----------------------------------------------------

def test_load_by_name_from_dipkit_data(shared, monkeypatch):
    monkeypatch.setenv(datasets.ENV, str(shared))
    assert datasets.path("set9") == shared / "set9"
    set9 = datasets.load("set9")
    assert len(set9) == 9 and all(x.image.shape[1] == 3 and x.mask is None for x in set9)
    b11 = datasets.load("bernoulli11")
    assert len(b11) == 11
    for x in b11:
        assert x.image.shape[1] == 1 and x.mask is not None and x.mask.shape[-2:] == x.image.shape[-2:]
        assert 0.45 < x.mask.float().mean() < 0.55
    c5 = datasets.load("classic5")
    assert [x.name for x in c5] == ["baboon", "barbara", "boats", "lena", "peppers"]
    assert all(x.image.shape == (1, 1, 512, 512) for x in c5)
    assert datasets.load("set9", mode="gray")[0].image.shape[1] == 1


# --- (2) the conversions, pixel for pixel -------------------------------------------------------

def test_classic5_bmp_to_png_keeps_the_pixels(shared, tmp_path):
    for png in sorted((shared / "classic5").glob("*.png")):
        original = pixels(png)
        bmp, out = tmp_path / f"{png.stem}.bmp", tmp_path / f"{png.stem}.png"
        Image.fromarray(original).save(bmp)
        datasets.gray_png(bmp, out)
        with Image.open(out) as im:
            assert im.format == "PNG" and im.mode == "L"
        assert np.array_equal(pixels(out), original), png.name


def test_gray_png_of_a_gray_palette_or_rgb_file_and_refuses_colour(tmp_path):
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    palette = Image.new("P", (16, 16))   # a gray palette in reverse order: Pillow reads it as mode P
    palette.putpalette([v for i in range(256) for v in (255 - i,) * 3])
    palette.putdata((255 - gray).ravel().tolist())
    palette.save(tmp_path / "p.bmp")
    with Image.open(tmp_path / "p.bmp") as im:
        assert im.mode == "P"
    Image.fromarray(np.repeat(gray[..., None], 3, axis=2)).save(tmp_path / "rgb.png")
    for src in ("p.bmp", "rgb.png"):
        datasets.gray_png(tmp_path / src, tmp_path / "out.png")
        assert np.array_equal(pixels(tmp_path / "out.png"), gray), src
    colour = np.stack([gray, gray.T, gray], axis=2)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(DipkitError, match="not a gray image"):
        datasets.gray_png(tmp_path / "colour.png", tmp_path / "out.png")


def test_bernoulli11_masks_are_the_seed_recipe(shared):
    masks = sorted((shared / "bernoulli11").glob("*_mask.png"))
    assert len(masks) == 11
    for f in masks:
        stored = pixels(f) != 0
        assert np.array_equal(datasets.paper_mask(*stored.shape), stored), f.name
        np.random.seed(100)   # the recipe itself, as README.md of the data writes it
        assert np.array_equal(np.random.random_sample((1, *stored.shape))[0] > 0.5, stored), f.name


def test_paper_mask_leaves_numpys_global_state_alone():
    np.random.seed(7)
    expected = np.random.random_sample(3)
    np.random.seed(7)
    datasets.paper_mask(8, 8)
    assert np.array_equal(np.random.random_sample(3), expected)


# --- (3) the fetch path with pooch faked --------------------------------------------------------

@pytest.fixture
def upstream_copies(shared, tmp_path):
    """{upstream path: local file} with the upstream files' contents or pixels: set9 byte-identical,
    classic5 as BMPs of the shared pixels, bernoulli11 as the shared PNGs."""
    d = tmp_path / "upstream"
    d.mkdir()
    files = {}
    for upstream in datasets.REGISTRY:
        stem, name = PurePosixPath(upstream).stem, PurePosixPath(upstream).name
        src = d / name
        if upstream in datasets.FILES["set9"]:
            shutil.copyfile(shared / "set9" / name, src)
        elif upstream in datasets.FILES["classic5"]:
            Image.fromarray(pixels(shared / "classic5" / f"{stem}.png")).save(src)
        else:
            shutil.copyfile(shared / "bernoulli11" / name, src)
        files[upstream] = src
    return files


def test_fetch_passes_the_registry_hashes_and_builds_the_folders(shared, upstream_copies, offline,
                                                                monkeypatch):
    calls = []

    def fake_retrieve(url, known_hash=None, fname=None, path=None, **kwargs):
        upstream = url[len(datasets.BASE_URL):]
        assert url.startswith(datasets.BASE_URL) and upstream in datasets.REGISTRY, url
        assert known_hash == "sha256:" + datasets.REGISTRY[upstream], upstream
        assert Path(path).is_relative_to(offline), path
        if upstream in datasets.FILES["set9"]:   # the real files: pooch's own check holds
            assert sha256(upstream_copies[upstream]) == known_hash.split(":")[1]
        calls.append(upstream)
        target = Path(path) / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(upstream_copies[upstream], target)
        return str(target)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    for name in datasets.SETS:
        folder = datasets.path(name)
        assert folder == offline / name
        assert sorted(f.name for f in folder.iterdir()) == sorted(datasets._outputs(name))
        for f in folder.iterdir():
            assert np.array_equal(pixels(f), pixels(shared / name / f.name)), f
        if name == "set9":
            assert all(sha256(f) == sha256(shared / name / f.name) for f in folder.iterdir())
    assert sorted(calls) == sorted(datasets.REGISTRY)
    assert [p.name for p in offline.iterdir() if p.name.startswith(".")] == []   # no work folder left

    b11 = datasets.load("bernoulli11")   # from the cache: no more calls
    assert len(b11) == 11 and all(x.mask is not None for x in b11)
    assert len(calls) == 25
    (offline / "classic5" / "lena.png").unlink()   # an incomplete set is made again
    assert len(datasets.load("classic5")) == 5 and len(calls) == 30


def failing(error):
    def retrieve(*args, **kwargs):
        raise error
    return retrieve


OFFLINE_ERRORS = {
    "requests": requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='raw.githubusercontent.com', port=443): Max retries exceeded\n"
        "(Caused by NameResolutionError('Failed to resolve'))"),
    "timeout": requests.exceptions.ReadTimeout("read timed out"),
    "http": requests.exceptions.HTTPError("404 Client Error: Not Found for url: ..."),
    "urllib": urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
    "os": OSError("Network is unreachable"),
}


@pytest.mark.parametrize("case", list(OFFLINE_ERRORS))
def test_no_network_is_one_clear_error(case, offline, monkeypatch):
    monkeypatch.setattr(pooch, "retrieve", failing(OFFLINE_ERRORS[case]))
    with pytest.raises(DipkitError) as info:
        datasets.path("set9")
    message = str(info.value)
    assert message.startswith("set9 is not in the cache and could not be downloaded (")
    assert "connect to the internet once" in message and "DIPKIT_DATA" in message and "set9/" in message
    assert type(OFFLINE_ERRORS[case]).__name__ in message
    assert info.value.__cause__ is OFFLINE_ERRORS[case]
    assert not (offline / "set9").exists()
    assert [p for p in offline.iterdir() if p.name.startswith(".")] == []


def test_a_download_with_another_hash_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(pooch, "retrieve", failing(ValueError("SHA256 hash of downloaded file (x) does "
                                                              "not match the known hash: expected y.")))
    with pytest.raises(DipkitError, match=r"classic5: the download of 'https://raw\.githubusercontent\.com/"
                                          r".*/baboon\.bmp' does not have the known SHA-256.*DIPKIT_DATA"):
        datasets.path("classic5")


# --- (4) DIPKIT_DATA without the set, unknown names ---------------------------------------------

def test_dipkit_data_without_the_set_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "set9").mkdir()
    monkeypatch.setenv(datasets.ENV, str(tmp_path))
    assert datasets.path("set9") == tmp_path / "set9"   # the folder only; no network either way
    with pytest.raises(DipkitError) as info:
        datasets.path("bernoulli11")
    message = str(info.value)
    assert f"'{tmp_path / 'bernoulli11'}' is not a folder" in message
    assert "DIPKIT_DATA" in message and "NAME_mask.png" in message and "11 gray" in message


def test_unknown_set_names_the_sets():
    with pytest.raises(DipkitError, match="unknown benchmark set 'set5'; the sets are set9, classic5, "
                                          "bernoulli11"):
        datasets.path("set5")


def test_resolve_a_folder_or_a_name(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.ENV, str(tmp_path / "copy"))
    (tmp_path / "copy" / "classic5").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert datasets.resolve("classic5") == tmp_path / "copy" / "classic5"
    assert datasets.resolve(Path("classic5")) == Path("classic5")   # a Path is a folder, never a name
    assert datasets.resolve("some/folder") == Path("some/folder")
    (tmp_path / "classic5").mkdir()   # an existing folder of that name wins
    assert datasets.resolve("classic5") == Path("classic5")


# --- (5) the command line -----------------------------------------------------------------------

def test_cli_bench_set_name_offline_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIPKIT_PROFILE", "quick")
    monkeypatch.setattr(pooch, "retrieve", failing(OFFLINE_ERRORS["requests"]))
    rc = main(["bench", "denoise", "set9", "-o", "x.csv"])
    out, err = capsys.readouterr()
    check_one_line_error(rc, err, "set9 is not in the cache")
    assert err.startswith("dipkit bench: error: ") and "DIPKIT_DATA" in err
    assert out == ""   # refused before anything ran
    assert not (tmp_path / "x.csv").exists()


def test_cli_bench_runs_a_set_by_name_from_dipkit_data(tmp_path, monkeypatch, capsys):
    """A one-image stand-in for set9 under DIPKIT_DATA, one 5-step fit."""
    (tmp_path / "data" / "set9").mkdir(parents=True)
    images.save(images.sample("astronaut", size=64), tmp_path / "data" / "set9" / "astronaut.png")
    monkeypatch.setenv(datasets.ENV, str(tmp_path / "data"))
    monkeypatch.setenv("DIPKIT_PROFILE", "quick")
    monkeypatch.chdir(tmp_path)
    rc = main(["bench", "denoise", "set9", "-o", "r.csv", "--methods", "paper", "--seeds", "0",
               "--steps", "5", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert f"1 images of 'set9' ({tmp_path / 'data' / 'set9'})" in out
    assert "astronaut" in (tmp_path / "r.csv").read_text()
