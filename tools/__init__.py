"""The command-line tools; a package so that ``tools.dataset_converters`` and the tools' ``main``
functions import from the repository root whatever else is installed."""
