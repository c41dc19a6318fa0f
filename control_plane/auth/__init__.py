"""Sign-in with Ethereum, JWTs, API keys, node-agent challenges; who the caller is."""
