"""A picture or model that fails to load leaves the previous one current, its maps and title included."""

from __future__ import annotations

import numpy as np
from gui_helpers import wait_idle


def _maps(window) -> dict[str, np.ndarray]:
    return {name: arr.copy() for name, arr in window.session.activations.items()}


def _same_maps(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_corrupt_picture_keeps_the_good_one(loaded_window, gui_model, gui_photo, tmp_path):
    window, session = loaded_window, loaded_window.session
    good_image, maps, title = session.image, _maps(window), window.windowTitle()
    assert "photo.png" in title
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    window.open_image_path(str(bad))
    wait_idle(window)
    assert window.last_error is not None and "bad.png" in window.last_error[0]
    assert session.image_source == str(gui_photo) and session.image_name == "photo.png"
    assert session.image is good_image and not session.image_is_default
    assert window.windowTitle() == title and "bad.png" not in title
    assert _same_maps(_maps(window), maps)

    # Reloading the model runs the good picture again, without the old error.
    window.last_error = None
    session.set_model(gui_model)
    wait_idle(window)
    assert window.last_error is None
    assert session.image_name == "photo.png" and session.activations
    assert _same_maps(_maps(window), maps)
    assert "bad.png" not in window.windowTitle()


def test_a_corrupt_model_file_keeps_the_previous_model(loaded_window, tmp_path):
    window, session = loaded_window, loaded_window.session
    model, maps, title = session.model, _maps(window), window.windowTitle()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"this is no model file at all")
    window.load_model(str(broken))
    wait_idle(window)
    assert window.last_error is not None
    assert session.model is model and session.image_name == "photo.png"
    assert window.windowTitle() == title
    assert _same_maps(_maps(window), maps)

    window.last_error = None
    session.set_model(model)
    wait_idle(window)
    assert window.last_error is None and _same_maps(_maps(window), maps)


def test_a_bad_start_up_picture_shows_the_error_and_a_sample(gui_window, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a picture")
    gui_window.start(image=str(bad))
    wait_idle(gui_window)
    session = gui_window.session
    assert gui_window.last_error is not None and "bad.png" in gui_window.last_error[0]
    assert session.model is not None and session.image is not None and session.activations
    assert session.image_is_default and session.image_name != "bad.png"
    assert "bad.png" not in gui_window.windowTitle()
    assert gui_window.feature_view.mosaic is not None
