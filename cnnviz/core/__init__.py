"""Qt-free core of cnnviz: models, capture, summary, receptive fields, training, rendering."""
