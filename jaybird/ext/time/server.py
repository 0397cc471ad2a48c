"""XEP-0202 on the server: the server's clock in UTC.

``tzo`` is ``+00:00`` unless the module option ``local_offset`` is true: then it is the server's local offset
(which tells where the machine is, so it is off by default).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

from jaybird.ext.time.wire import NAME, TIME, EntityTime
from jaybird.server.api import IqRequest, IqScope, ServerModule
from jaybird.stanza import IqType


class TimeModule(ServerModule):
    name: ClassVar[str] = "time"
    implements: ClassVar[tuple[str, ...]] = ("XEP-0202",)

    async def load(self) -> None:
        self.local_offset = self.options.get_bool("local_offset", False)
        self.feature(TIME)
        self.iq(IqType.GET, NAME, self._answer, scope=IqScope.HOST)

    def now(self) -> EntityTime:
        utc = datetime.now(UTC)
        offset = utc.astimezone().utcoffset() if self.local_offset else None
        return EntityTime(utc, offset or timedelta(0))

    def _answer(self, request: IqRequest) -> EntityTime:
        return self.now()
