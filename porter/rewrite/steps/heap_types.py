"""heap-types: static PyTypeObjects become heap types created per module from a PyType_Spec.

(Placeholder until the conversion lands: every static type is reported and stays static.)
"""

from __future__ import annotations

from porter.model import ExtensionModule
from porter.rewrite.context import PortContext


def convertible_types(module: ExtensionModule, unsafe: bool) -> dict[str, str | None]:
    return {t.name: "static types are converted by the heap-types step (not yet available)"
            for t in module.static_types}


class HeapTypes:
    id = "heap-types"

    def run(self, ctx: PortContext) -> None:
        return
