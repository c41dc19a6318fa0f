// SPDX-License-Identifier: MIT
// TEMPORARY STUB (compile-only); replaced by the real NodusSwap.
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ISubscriptionManager} from "./interfaces/ISubscriptionManager.sol";

contract NodusSwap {
    IERC20 public immutable nds;

    constructor(IERC20 nds_, ISubscriptionManager) {
        nds = nds_;
    }

    function addLiquidity(uint256 ndsAmount, uint256, address, uint256)
        external
        payable
        returns (uint256)
    {
        nds.transferFrom(msg.sender, address(this), ndsAmount);
        return 0;
    }
}
