"""The test suite. Shared helpers live in tests.support; tests are plain functions named for behaviour."""
