"""The embedded broker: kombu's filesystem transport with atomic writes.

kombu writes a message by creating its file in the queue folder and then writing to it; a worker
listing the folder in between takes the still-empty file, fails to decode it and its consumer
dies (seen in CI with webhooks and beat sending at once). Here a message is written under a name
the queue never lists and renamed into place when complete: a rename within one folder is
atomic, so a worker sees a whole message or none.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.part"  # the queue lists only names ending in ".<queue>.msg"
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
