"""The database connection as the processes get it (the settings' values: test_settings_env.py)."""

import socket

import pytest
from django.conf import settings
from django.db import connection


@pytest.mark.django_db
def test_a_postgresql_connection_s_socket_probes_a_quiet_link():
    if connection.vendor != "postgresql":
        pytest.skip("TCP keepalives are set on PostgreSQL connections only")
    options = settings.DATABASES["default"]["OPTIONS"]
    connection.ensure_connection()
    # libpq applied the options to the socket itself, where the kernel acts on them.
    sock = socket.socket(fileno=connection.connection.pgconn.socket)
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == options["keepalives_idle"] == 30
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == options["keepalives_interval"]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == options["keepalives_count"]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 60_000
    finally:
        sock.detach()  # the descriptor stays libpq's
