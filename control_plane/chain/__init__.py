"""Everything the control plane knows of the chain: contract ABIs, addresses, RPC access."""
