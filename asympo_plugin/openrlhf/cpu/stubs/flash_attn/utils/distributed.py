"""CPU stub (see the package docstring): used only by ring attention."""

from .. import unavailable

all_gather = unavailable("utils.distributed.all_gather")
