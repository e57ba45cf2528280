"""The AES envelope of compatible and safe modes (wechatpy's ``PrpCrypto`` underneath)."""

from __future__ import annotations

import struct

from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException

from bot.wechat.signing import signature, signature_matches


class EnvelopeError(ValueError):
    """An AES envelope that fails its signature, base64, padding, length or appid check."""


class Envelope:
    """The AES envelope of compatible and safe modes, for one account.

    ``random16`` fixes the 16 random bytes that lead each plaintext (for golden-vector tests);
    by default they are random, as the platform requires.
    """

    def __init__(self, token: str, aes_key: str, appid: str, random16: str | None = None) -> None:
        self.token = token
        self.appid = appid
        self._key = WeChatCrypto(token, aes_key, appid).key  # checks the 43-character key
        self._random16 = random16

    def _prp(self) -> PrpCrypto:
        prp = PrpCrypto(self._key)
        if self._random16 is not None:
            prp.get_random_string = lambda: self._random16
        return prp

    def open(self, encrypt: str, msg_signature: str | None, timestamp: str, nonce: str) -> str:
        """Check ``msg_signature`` and decrypt ``encrypt`` into the plaintext XML."""
        expected = signature(self.token, timestamp, nonce, encrypt)
        if not signature_matches(expected, msg_signature):
            raise EnvelopeError("msg_signature does not match")
        try:
            plain = self._prp().decrypt(encrypt, self.appid)
        except InvalidAppIdException:
            raise EnvelopeError("the appid inside the ciphertext is not this account's") from None
        except (ValueError, TypeError, IndexError, UnicodeDecodeError, struct.error) as exc:
            raise EnvelopeError(f"undecryptable Encrypt ({type(exc).__name__})") from None
        return plain.decode("utf-8") if isinstance(plain, bytes) else plain

    def encrypt(self, xml: str) -> str:
        """The ``Encrypt`` value: base64 of AES-256-CBC over random16, length, xml and appid."""
        return self._prp().encrypt(xml, self.appid).decode("ascii")

    def seal(self, xml: str, timestamp: str, nonce: str) -> str:
        """Encrypt ``xml`` into the signed reply envelope."""
        encrypt = self.encrypt(xml)
        return (
            "<xml>\n"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n"
            f"<MsgSignature><![CDATA[{signature(self.token, timestamp, nonce, encrypt)}]]>"
            "</MsgSignature>\n"
            f"<TimeStamp>{timestamp}</TimeStamp>\n"
            f"<Nonce><![CDATA[{nonce}]]></Nonce>\n"
            "</xml>"
        )
