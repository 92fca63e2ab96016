# Link check by timeout: a tiny DNS query to the DNS server the DHCP lease named (usually the
# router). Any answer - even "no such name" - proves the Wi-Fi link and the router work; silence
# for `timeout_ms` means the link is gone, whatever WLAN.isconnected() still claims (it can stay
# True for minutes after the access point vanished).
import socket

from micropython import const

_POLL_MS = const(50)

# DNS query (RFC 1035 4.1): id 0x5043, flags 0x0100 (recursion desired), 1 question,
# QNAME "pv." (a name no resolver has to look far for), QTYPE A, QCLASS IN.
_QUERY = b"\x50\x43\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02pv\x00\x00\x01\x00\x01"


class DnsProbe:
    """`server()` returns the DNS server's address (a dotted string) or None."""

    def __init__(self, clock, server, port=53, timeout_ms=3000):
        self.clock = clock
        self.server = server
        self.port = port
        self.timeout_ms = timeout_ms
        self._buf = bytearray(64)

    async def check(self):
        """True when the DNS server answered within timeout_ms."""
        host = self.server()
        if not host or host == "0.0.0.0":
            return False
        s = None
        try:
            addr = socket.getaddrinfo(host, self.port, 0, socket.SOCK_DGRAM)[0][-1]
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.sendto(_QUERY, addr)
            waited_ms = 0
            while waited_ms < self.timeout_ms:
                try:
                    n = s.readinto(self._buf)
                except OSError:
                    n = None            # EAGAIN: nothing yet
                # The answer must carry our id: a stray datagram proves nothing.
                if n and n >= 2 and self._buf[0] == 0x50 and self._buf[1] == 0x43:
                    return True
                await self.clock.sleep_ms(_POLL_MS)
                waited_ms += _POLL_MS
            return False
        except OSError:
            return False
        finally:
            if s is not None:
                s.close()
