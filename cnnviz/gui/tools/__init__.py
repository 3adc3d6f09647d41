"""The app's tool docks: the layer editor (``editor``) and training (``training``).

Each dock works on the current model through the core and runs its slow work on a
:class:`~cnnviz.gui.workers.JobRunner`; the main window wires their signals.
"""
