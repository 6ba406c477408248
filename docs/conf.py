"""Sphinx configuration of the tosc-sionna documentation (built by scripts/docs.sh)."""

import inspect
import sys
from pathlib import Path

# document this checkout, not another tosc-sionna installed in the environment
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

project = "tosc-sionna"
author = "tosc-sionna contributors"
copyright = "tosc-sionna contributors"
from tosc_cache import __version__ as release  # noqa: E402 - this checkout's; no Keras

version = release

extensions = [
    "myst_nb",  # MyST markdown pages and MyST-markdown (jupytext) notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

# pages are .md (MyST); a notebook is a .md with jupytext's md:myst header
source_suffix = {".md": "myst-nb"}
exclude_patterns = ["_build", "README.md", "**/.ipynb_checkpoints", ".DS_Store"]

# -- MyST and notebooks --------------------------------------------------------
myst_heading_anchors = 3  # links like channels.md#your-own-channel resolve
myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath"]
nb_execution_mode = "off"  # the test suite runs the tutorial; the build only renders it

# -- API reference -------------------------------------------------------------
# Sionna's docstring layout (numpy style): Parameters / Input / Output
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_custom_sections = [("Input", "params_style"), ("Output", "returns_style")]
autodoc_member_order = "bysource"
# Keras' own docstrings (call, get_config, from_config...) are not ours to render
autodoc_inherit_docstrings = False
autodoc_typehints = "description"  # signatures stay short; types go with the parameters
autodoc_typehints_description_target = "documented"  # no bare "kwargs (Any)" entries
autodoc_default_options = {"members": True, "show-inheritance": True}


def init_signature(app, what, name, obj, options, signature, return_annotation):
    """Keras layers and models define ``__new__(cls, *args, **kwargs)``, which autodoc
    shows as the class signature: show ``__init__``'s parameters instead."""
    if what in ("class", "exception") and signature == "(*args, **kwargs)":
        try:
            params = list(inspect.signature(obj.__init__).parameters.values())[1:]
        except (TypeError, ValueError):
            return None
        # no annotations, as autodoc_typehints = "description" gives every other signature
        params = [p.replace(annotation=inspect.Parameter.empty) for p in params]
        return str(inspect.Signature(params)), return_annotation
    return None


def setup(app):
    app.connect("autodoc-process-signature", init_signature)


# -- HTML ----------------------------------------------------------------------
html_theme = "furo"
html_title = f"tosc-sionna {release}"
