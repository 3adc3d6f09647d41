"""The model zoo's timm list: read off the GUI thread, searchable, filterable to models with pretrained weights."""

from __future__ import annotations

import timm
from gui_helpers import wait_idle

from cnnviz.gui.dialogs import ZooDialog


def _visible(dialog: ZooDialog) -> list[str]:
    return [
        dialog.list.item(i).text()
        for i in range(dialog.list.count())
        if not dialog.list.item(i).isHidden()
    ]


def test_timm_list_is_read_in_the_background_and_filters(qtbot):
    dialog = ZooDialog(names=["alexnet", "resnet18"])
    qtbot.addWidget(dialog)
    sources = [dialog.source.itemData(i) for i in range(dialog.source.count())]
    assert sources == ["torchvision", "timm"]
    assert not dialog.pretrained_only.isVisibleTo(dialog)
    dialog.source.setCurrentIndex(1)
    assert dialog.pretrained_only.isVisibleTo(dialog)
    qtbot.waitUntil(lambda: dialog.list.count() > 0, timeout=60000)
    pretrained = sorted({n.split(".")[0] for n in timm.list_models(pretrained=True)})
    assert dialog.names == [f"timm:{n}" for n in pretrained]
    assert dialog.list.currentItem().text() == "timm:resnet50d"
    assert dialog.choice() == ("timm:resnet50d", "default")
    dialog.random.setChecked(True)
    assert dialog.choice() == ("timm:resnet50d", "none")

    dialog.pretrained_only.setChecked(False)
    assert dialog.names == [f"timm:{n}" for n in sorted(timm.list_models())]
    dialog.filter.setText("botnet")
    shown = _visible(dialog)
    assert shown and all("botnet" in n for n in shown)
    assert dialog.list.currentItem().text() == shown[0]  # the choice follows the filter
    dialog.list.setCurrentRow(dialog.names.index("timm:botnet50ts_256"))
    # no pretrained weights: only random weights can be chosen, and the dialog says why
    assert not dialog.pretrained.isEnabled() and dialog.random.isChecked()
    assert "no pretrained weights" in dialog.info.text()
    assert dialog.choice() == ("timm:botnet50ts_256", "none")

    dialog.source.setCurrentIndex(0)
    assert dialog.names == ["alexnet", "resnet18"] and dialog.choice() == (
        "resnet18",
        "IMAGENET1K_V1",
    )


def test_a_timm_model_from_the_zoo_opens_in_the_window(gui_window):
    gui_window.load_zoo_model("timm:mobilenetv3_small_100", "none")
    wait_idle(gui_window)
    model = gui_window.session.model
    assert model is not None and model.name == "timm:mobilenetv3_small_100"
    assert model.input_shape == (3, 224, 224) and model.labels is not None
    assert len(model.labels) == 1000
