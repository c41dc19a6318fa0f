// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/// @title NDSToken
/// @notice The Nodus token: subscriptions are paid in it, operators stake it, rewards are paid in
/// it, and its holders govern the protocol through their delegated votes.
/// @dev Fixed supply minted once at deploy; there is no mint function. Votes are checkpointed on a
/// timestamp clock (EIP-6372) because block-number delays mean little on chains that mine a block
/// per transaction, and because L2 block times vary.
contract NDSToken is ERC20, ERC20Permit, ERC20Votes {
    /// @param initialHolder Receives the whole fixed supply.
    /// @param totalSupply_ The fixed supply, in wei (18 decimals).
    constructor(address initialHolder, uint256 totalSupply_)
        ERC20("Nodus", "NDS")
        ERC20Permit("Nodus")
    {
        _mint(initialHolder, totalSupply_);
    }

    /// @notice EIP-6372 clock: unix seconds.
    function clock() public view override returns (uint48) {
        return uint48(block.timestamp);
    }

    /// @notice EIP-6372 clock mode: timestamps.
    // solhint-disable-next-line func-name-mixedcase
    function CLOCK_MODE() public pure override returns (string memory) {
        return "mode=timestamp";
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Votes) {
        super._update(from, to, value);
    }

    function nonces(address owner) public view override(ERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }
}
