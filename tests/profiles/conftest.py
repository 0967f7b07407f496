"""Identity tests share tests/messages.py and the ``send`` fixture of tests/conftest.py."""
