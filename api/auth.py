"""`Authorization: Token <key>` (or `Bearer <key>`) for DRF."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from api.tokens import check_key


class TokenAuthentication(authentication.BaseAuthentication):
    keywords = ("token", "bearer")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header: 'Token <key>', the key without spaces.")
        token = check_key(header[1])
        if token is None:
            raise exceptions.AuthenticationFailed("This API token is not valid (unknown or revoked).")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return "Token"
