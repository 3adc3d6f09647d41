"""Data shipped with cnnviz: the default model, sample images, fonts, icons."""
