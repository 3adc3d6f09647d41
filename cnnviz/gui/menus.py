"""The main window's actions, menus, toolbar and status bar: what the user can ask for, where it is offered,
and where the window answers.

Each function works on a :class:`~cnnviz.gui.main_window.MainWindow`, which owns the views, docks and slots
named here, and stores what it builds on the window.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QProgressBar, QSizePolicy, QToolButton

from cnnviz.core.present.view import COLORMAPS
from cnnviz.gui import dialogs
from cnnviz.gui.help import show_help
from cnnviz.gui.views.elided import ElidedLabel

if TYPE_CHECKING:
    from cnnviz.gui.main_window import MainWindow

__all__ = ["POPULAR_MODELS", "build_actions", "build_menus", "build_status_bar", "build_toolbar"]

POPULAR_MODELS = ("resnet18", "resnet50", "vgg16", "alexnet", "googlenet", "mobilenet_v3_small",
                  "efficientnet_b0", "densenet121", "convnext_tiny")  # fmt: skip
"""torchvision models offered in the Model menu's quick list."""


def _action(
    window: MainWindow,
    text: str,
    slot: Any,
    shortcut: Any = None,
    tip: str | None = None,
    checkable: bool = False,
) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(tip)
    action.setCheckable(checkable)
    if checkable:
        action.toggled.connect(slot)
    else:
        action.triggered.connect(lambda _checked=False: slot())
    return action


def build_actions(window: MainWindow) -> None:
    """Create the window's actions (``window.act_*``)."""
    a = partial(_action, window)
    window.act_open_image = a(
        "Open &Image…", window.choose_image, QKeySequence.StandardKey.Open, "Open a picture"
    )
    window.act_open_model = a("Open &Model…", window.choose_model, "Ctrl+Shift+O",
                            "Open a model file: spec JSON, checkpoint, TorchScript, .pt2")  # fmt: skip
    window.act_model_weights = a("Open Model with &Weights…", window.choose_model_and_weights, None,
                               "A torchvision name or file plus a state_dict file")  # fmt: skip
    window.act_paste = a(
        "&Paste Image",
        window.paste_image,
        QKeySequence.StandardKey.Paste,
        "Use the picture on the clipboard",
    )
    window.act_quit = a("&Quit", window.close, QKeySequence.StandardKey.Quit)
    window.act_quit.setShortcut(QKeySequence("Ctrl+Q"))
    window.act_default_model = a(
        "&Default Digits Model",
        lambda: window.load_model("default"),
        None,
        "The bundled digits model",
    )
    window.act_zoo = a(
        "Model &Zoo…", window.choose_zoo_model, "Ctrl+M", "torchvision classification models"
    )
    window.act_erf = a("&Effective Receptive Field", window.session.set_erf_enabled, "E",
                     "Show the gradient-based effective receptive field of the selected unit", checkable=True)  # fmt: skip
    window.act_sort = a(
        "&Sort Channels by Mean", window.feature_view.set_sorted, None, None, checkable=True
    )
    window.act_fit = a("&Fit Picture", window.input_view.fit, "F", "Zoom the picture to fit")
    window.act_model_input = a("Show Model &Input", lambda on: window.input_view.set_mode("model" if on else "original"),
                             "I", "Show the picture as the network receives it", checkable=True)  # fmt: skip
    window.act_about = a("&About cnnviz", partial(dialogs.show_about, window))
    window.act_getting_started = a("&Getting Started", partial(show_help, window, "getting_started"),
                                   QKeySequence.StandardKey.HelpContents, "What to do first, in five steps")  # fmt: skip
    window.act_shortcuts = a("&Keyboard Shortcuts", partial(show_help, window, "shortcuts"), None,
                             "Every keyboard shortcut of the window")  # fmt: skip
    window.act_reset_layout = a("&Reset Layout", window.reset_layout, None,
                                "Put the panels back where and how large they were at first start")  # fmt: skip
    # Pressing a tool's shortcut again keeps it open and in front (closing is the panel's own button).
    window.act_editor = a("Layer &Editor", lambda: window.show_tool(window.editor_dock), "Ctrl+E",
                          "Change the network's layers and see what each change does")  # fmt: skip
    window.act_training = a("&Training", lambda: window.show_tool(window.training_dock), "Ctrl+T",
                            "Train the network on digits or a folder of pictures")  # fmt: skip
    window.act_lab = a("Convolution &Lab", window.show_lab, "Ctrl+L",
                       "Lessons on convolution in a window of their own")  # fmt: skip
    window.act_export_grid_png = a(
        "Feature Maps as &PNG…", lambda: window.choose_export("grid_png")
    )
    window.act_export_grid_svg = a(
        "Feature Maps as &SVG…", lambda: window.choose_export("grid_svg")
    )
    window.act_export_channel = a(
        "Enlarged &Channel as PNG…", lambda: window.choose_export("channel_png")
    )
    window.act_export_rf_png = a(
        "&Receptive Field Overlay as PNG…", lambda: window.choose_export("rf_png")
    )
    window.act_export_rf_svg = a(
        "Receptive Field Overlay as S&VG…", lambda: window.choose_export("rf_svg")
    )
    window.act_export_all = a(
        "&All Layers…", window.choose_export_all, None, "Every layer's maps into a folder"
    )
    window.act_export_csv = a("Layer Table as CS&V…", lambda: window.choose_export("table_csv"))
    window.act_export_md = a("Layer Table as &Markdown…", lambda: window.choose_export("table_md"))


def build_menus(window: MainWindow) -> None:
    """Fill the menu bar from the actions, the docks and the view choices."""
    bar = window.menuBar()
    file = bar.addMenu("&File")
    file.addAction(window.act_open_image)
    file.addAction(window.act_paste)
    window.samples_menu = file.addMenu("&Samples")
    window.samples_menu.aboutToShow.connect(window._fill_samples)
    window.recent_images_menu = file.addMenu("Recent &Images")
    window.recent_images_menu.aboutToShow.connect(
        lambda: window._fill_recent(window.recent_images_menu, "recentImages")
    )
    file.addAction(window.top_pictures_dock.act_open_folder)
    file.addMenu(window.top_pictures_dock.recent_menu)
    file.addSeparator()
    file.addAction(window.act_open_model)
    file.addAction(window.act_model_weights)
    window.recent_models_menu = file.addMenu("Recent M&odels")
    window.recent_models_menu.aboutToShow.connect(
        lambda: window._fill_recent(window.recent_models_menu, "recentModels")
    )
    file.addSeparator()
    export = file.addMenu("&Export")
    for act in (window.act_export_grid_png, window.act_export_grid_svg, window.act_export_channel):
        export.addAction(act)
    export.addSeparator()
    export.addAction(window.act_export_rf_png)
    export.addAction(window.act_export_rf_svg)
    export.addSeparator()
    export.addAction(window.act_export_all)
    export.addSeparator()
    export.addAction(window.act_export_csv)
    export.addAction(window.act_export_md)
    file.addSeparator()
    file.addAction(window.act_quit)

    model = bar.addMenu("&Model")
    model.addAction(window.act_default_model)
    quick = model.addMenu("Model Zoo (&pretrained)")
    for name in POPULAR_MODELS:
        quick.addAction(name, partial(window.load_zoo_model, name, "default"))
    quick.addSeparator()
    quick.addAction(window.act_zoo)
    model.addAction(window.act_zoo)
    model.addSeparator()
    model.addAction(window.act_open_model)
    model.addAction(window.act_model_weights)

    view = bar.addMenu("&View")
    cmap_menu = view.addMenu("&Colormap")
    window.cmap_group = QActionGroup(window)
    for name in COLORMAPS:
        act = QAction(name, window, checkable=True)
        act.triggered.connect(partial(window.feature_view.set_cmap, name))
        window.cmap_group.addAction(act)
        cmap_menu.addAction(act)
    norm_menu = view.addMenu("&Normalisation")
    window.norm_group = QActionGroup(window)
    for key, text in (("channel", "Per Channel"), ("layer", "Per Layer")):
        act = QAction(text, window, checkable=True)
        act.setData(key)
        act.triggered.connect(partial(window.feature_view.set_norm, key))
        window.norm_group.addAction(act)
        norm_menu.addAction(act)
    view.addAction(window.act_sort)
    view.addSeparator()
    view.addAction(window.act_erf)
    view.addAction(window.act_model_input)
    view.addAction(window.act_fit)
    view.addSeparator()
    for dock in (window.layers_dock, window.table_dock, window.predictions_dock, window.draw_dock,
                 window.editor_dock, window.training_dock, window.top_pictures_dock):  # fmt: skip
        view.addAction(dock.toggleViewAction())
    view.addSeparator()
    view.addAction(window.act_reset_layout)
    tools = bar.addMenu("&Tools")
    pictures = window.top_pictures_dock.act_show
    for act in (window.act_editor, window.act_training, window.act_lab, pictures):
        tools.addAction(act)
    # The lab's own window answers the same keys (switch tools, quit) as the main window.
    for act in (window.act_editor, window.act_training, window.act_lab, window.act_quit):
        window.lab_window.addAction(act)

    help_menu = bar.addMenu("&Help")
    help_menu.addAction(window.act_getting_started)
    help_menu.addAction(window.act_shortcuts)
    help_menu.addSeparator()
    help_menu.addAction(window.act_about)


def build_toolbar(window: MainWindow) -> None:
    """The main toolbar: opening things, the receptive-field switches and a menu of exports."""
    tb = window.addToolBar("Main")
    tb.setObjectName("main_toolbar")
    tb.setMovable(False)
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    tb.addAction(window.act_open_image)
    tb.addAction(window.act_open_model)
    tb.addAction(window.act_zoo)
    tb.addSeparator()
    tb.addAction(window.act_erf)
    tb.addAction(window.act_model_input)
    tb.addSeparator()
    export_button = QToolButton()
    export_button.setText("Export")
    export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    menu = QMenu(export_button)
    for act in (
        window.act_export_grid_png,
        window.act_export_rf_png,
        window.act_export_all,
        window.act_export_csv,
    ):
        menu.addAction(act)
    export_button.setMenu(menu)
    tb.addWidget(export_button)
    window.toolbar = tb


def build_status_bar(window: MainWindow) -> None:
    """The status bar: the selected unit, messages, and the progress and Cancel of background work.

    Its labels elide what does not fit (the whole text in their tooltip), so a long message never widens the
    window.
    """
    window.unit_label = ElidedLabel("")
    window.unit_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    window.busy_label = ElidedLabel("")  # "Exporting <a long file name>…"
    window.busy_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
    window.busy_label.setMaximumWidth(320)
    window.progress = QProgressBar()
    window.progress.setMaximumWidth(180)
    window.progress.setMaximumHeight(16)
    window.progress.setVisible(False)
    window.cancel_button = QToolButton()
    window.cancel_button.setText("Cancel")
    window.cancel_button.setVisible(False)
    window.cancel_button.clicked.connect(window.cancel_work)
    window.message_label = ElidedLabel("")
    window.message_label.setStyleSheet("color: palette(dark);")
    status = window.statusBar()
    # All permanent: hovering a menu shows action tips without hiding the unit read-out.
    status.addPermanentWidget(window.unit_label, 3)
    status.addPermanentWidget(window.message_label, 2)
    status.addPermanentWidget(window.busy_label)
    status.addPermanentWidget(window.progress)
    status.addPermanentWidget(window.cancel_button)
