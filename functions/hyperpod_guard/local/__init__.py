"""Local stand-ins for the demo and the tests (moto in server mode). Not shipped to Lambda."""
