"""XEP-0092 on the server: the server's software name and version.

The operating system is told only when the module option ``show_os`` is true: it helps an attacker more
than a user (XEP-0092 §5).
"""

from __future__ import annotations

import platform
from typing import ClassVar

from jaybird import __version__, ns
from jaybird.ext.version.wire import NAME, SoftwareVersion
from jaybird.server.api import IqRequest, IqScope, ServerModule
from jaybird.stanza import IqType

SOFTWARE = "jaybird"


class VersionModule(ServerModule):
    name: ClassVar[str] = "version"
    implements: ClassVar[tuple[str, ...]] = ("XEP-0092",)

    async def load(self) -> None:
        show_os = self.options.get_bool("show_os", False)
        os = f"{platform.system()} {platform.release()}".strip() if show_os else None
        self.answer = SoftwareVersion(SOFTWARE, __version__, os or None)
        self.feature(ns.VERSION)
        self.iq(IqType.GET, NAME, self._answer, scope=IqScope.HOST)

    def _answer(self, request: IqRequest) -> SoftwareVersion:
        return self.answer
