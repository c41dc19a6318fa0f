// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {LowLevelCall} from "@openzeppelin/contracts/utils/LowLevelCall.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ISubscriptionManager} from "./interfaces/ISubscriptionManager.sol";

/// @title NodusSwap
/// @notice Constant-product NDS/ETH pool (Uniswap V2 math, 0.3% fee kept by the pool) that is
/// also its own LP share token. `buySubscriptionWithETH` lets a user pay for VPN access with ETH
/// in one transaction: the pool swaps exactly the NDS cost and pays the SubscriptionManager.
/// @dev Reserves live in storage (two uint112 in one slot) and only change through this
/// contract's functions: tokens or ETH sent to the pool any other way (an NDS transfer, a
/// selfdestruct) are ignored, so donations cannot skew prices, and there is no `sync`/`skim`.
/// Plain ETH transfers are rejected (no `receive`/`fallback`). The NDS token is trusted to move
/// exact amounts (no fee on transfer), which the stored reserves rely on.
contract NodusSwap is ERC20, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice LP shares minted to `DEAD` on the first deposit, so the supply never returns to 0
    /// and a share can never be worth an attackable amount of reserves.
    uint256 public constant MINIMUM_LIQUIDITY = 1000;
    /// @notice Holder of the locked MINIMUM_LIQUIDITY (OpenZeppelin ERC20 cannot mint to 0).
    address public constant DEAD = address(0xdead);

    /// @notice The NDS token.
    IERC20 public immutable nds;
    /// @notice The SubscriptionManager that `buySubscriptionWithETH` pays.
    ISubscriptionManager public immutable subscriptions;

    uint112 private _reserveNds;
    uint112 private _reserveEth;

    /// @notice `provider` deposited `nds` and `eth`; `to` received `liquidity` LP shares.
    event LiquidityAdded(
        address indexed provider, address indexed to, uint256 nds, uint256 eth, uint256 liquidity
    );
    /// @notice `provider` burned `liquidity` LP shares; `to` received `nds` and `eth`.
    event LiquidityRemoved(
        address indexed provider, address indexed to, uint256 nds, uint256 eth, uint256 liquidity
    );
    /// @notice `sender` swapped `amountIn` (ETH if `ethIn`, else NDS) for `amountOut` of the other
    /// asset, sent to `to` (the SubscriptionManager for `buySubscriptionWithETH`).
    event Swap(
        address indexed sender, address indexed to, bool ethIn, uint256 amountIn, uint256 amountOut
    );
    /// @notice `subscriber` bought `months` periods, paying `ethPaid` for `ndsCost` NDS.
    event SubscriptionBought(
        address indexed subscriber, uint32 months, uint256 ethPaid, uint256 ndsCost
    );

    error Expired();
    error ZeroAmount();
    error ZeroAddress();
    error InsufficientLiquidity();
    error InsufficientOutput(uint256 out, uint256 minOut);
    error ExcessiveInput(uint256 amountIn, uint256 maxIn);
    error EthTransferFailed();

    /// @dev Reverts once `deadline` (unix seconds) has passed.
    modifier ensure(uint256 deadline) {
        if (block.timestamp > deadline) revert Expired();
        _;
    }

    /// @param nds_ The NDS token.
    /// @param subscriptions_ The SubscriptionManager (it must charge in `nds_`).
    constructor(IERC20 nds_, ISubscriptionManager subscriptions_)
        ERC20("Nodus NDS/ETH LP", "NDS-ETH-LP")
    {
        if (address(nds_) == address(0) || address(subscriptions_) == address(0)) {
            revert ZeroAddress();
        }
        nds = nds_;
        subscriptions = subscriptions_;
    }

    /// @notice Deposits ETH (msg.value) and NDS (pulled from msg.sender; approve first) and mints
    /// LP shares to `to`.
    /// @dev First deposit: takes all of `ndsAmount` and msg.value, sets the price, and mints
    /// sqrt(nds * eth) shares, of which MINIMUM_LIQUIDITY are locked at `DEAD`.
    /// Later deposits: msg.value is taken in full and only the NDS at the current ratio is pulled,
    /// `ndsNeeded = msg.value * reserveNds / reserveEth` (rounded down); it reverts with
    /// ExcessiveInput if that exceeds `ndsAmount`, so `ndsAmount` is the caller's maximum.
    /// The shares minted are the smaller of the two deposit ratios times the supply (rounded
    /// down), so a deposit never dilutes existing LPs; the ETH rounding dust stays with the pool.
    /// @param ndsAmount NDS to deposit (first deposit) or the most NDS to take (later ones).
    /// @param minLiquidity Reverts if fewer LP shares would be minted.
    /// @param to Receives the LP shares.
    /// @param deadline Reverts after this time (unix seconds).
    /// @return liquidity LP shares minted to `to`.
    function addLiquidity(uint256 ndsAmount, uint256 minLiquidity, address to, uint256 deadline)
        external
        payable
        nonReentrant
        ensure(deadline)
        returns (uint256 liquidity)
    {
        if (msg.value == 0 || ndsAmount == 0) revert ZeroAmount();
        (uint256 reserveNds, uint256 reserveEth) = (_reserveNds, _reserveEth);
        uint256 supply = totalSupply();
        uint256 ndsIn;
        if (supply == 0) {
            ndsIn = ndsAmount;
            _setReserves(ndsIn, msg.value); // bounds both amounts by uint112 before multiplying
            uint256 root = Math.sqrt(ndsIn * msg.value);
            if (root <= MINIMUM_LIQUIDITY) revert InsufficientLiquidity();
            liquidity = root - MINIMUM_LIQUIDITY;
            _mint(DEAD, MINIMUM_LIQUIDITY);
        } else {
            ndsIn = msg.value * reserveNds / reserveEth;
            if (ndsIn > ndsAmount) revert ExcessiveInput(ndsIn, ndsAmount);
            liquidity = Math.min(msg.value * supply / reserveEth, ndsIn * supply / reserveNds);
            if (liquidity == 0) revert InsufficientLiquidity();
            _setReserves(reserveNds + ndsIn, reserveEth + msg.value);
        }
        if (liquidity < minLiquidity) revert InsufficientOutput(liquidity, minLiquidity);
        _mint(to, liquidity);
        emit LiquidityAdded(msg.sender, to, ndsIn, msg.value, liquidity);
        nds.safeTransferFrom(msg.sender, address(this), ndsIn);
    }

    /// @notice Burns `liquidity` of msg.sender's LP shares and sends `to` their share of both
    /// reserves (rounded down, in the pool's favour).
    /// @param liquidity LP shares to burn.
    /// @param minNds Reverts if less NDS would be paid out.
    /// @param minEth Reverts if less ETH would be paid out.
    /// @param to Receives the NDS and ETH.
    /// @param deadline Reverts after this time (unix seconds).
    /// @return ndsOut NDS sent to `to`.
    /// @return ethOut ETH sent to `to`.
    function removeLiquidity(
        uint256 liquidity,
        uint256 minNds,
        uint256 minEth,
        address to,
        uint256 deadline
    ) external nonReentrant ensure(deadline) returns (uint256 ndsOut, uint256 ethOut) {
        if (liquidity == 0) revert ZeroAmount();
        if (to == address(0)) revert ZeroAddress();
        (uint256 reserveNds, uint256 reserveEth) = (_reserveNds, _reserveEth);
        uint256 supply = totalSupply();
        ndsOut = liquidity * reserveNds / supply;
        ethOut = liquidity * reserveEth / supply;
        if (ndsOut == 0 || ethOut == 0) revert InsufficientLiquidity();
        if (ndsOut < minNds) revert InsufficientOutput(ndsOut, minNds);
        if (ethOut < minEth) revert InsufficientOutput(ethOut, minEth);
        _burn(msg.sender, liquidity);
        _setReserves(reserveNds - ndsOut, reserveEth - ethOut);
        emit LiquidityRemoved(msg.sender, to, ndsOut, ethOut, liquidity);
        nds.safeTransfer(to, ndsOut);
        _sendEth(to, ethOut);
    }

    /// @notice Output of swapping `amountIn` at the current reserves, after the 0.3% fee.
    /// @param amountIn Amount paid in (ETH if `ethIn`, else NDS).
    /// @param ethIn True to price ETH -> NDS, false for NDS -> ETH.
    /// @return The amount of the other asset the swap would pay out.
    function getAmountOut(uint256 amountIn, bool ethIn) external view returns (uint256) {
        return ethIn
            ? _amountOut(amountIn, _reserveEth, _reserveNds)
            : _amountOut(amountIn, _reserveNds, _reserveEth);
    }

    /// @notice Smallest input that buys exactly `amountOut` at the current reserves, after the
    /// 0.3% fee (Uniswap V2's getAmountIn, rounded up).
    /// @param amountOut Amount wanted out (NDS if `ethIn`, else ETH).
    /// @param ethIn True if the input is ETH (buying NDS), false if it is NDS (buying ETH).
    /// @return The input amount needed.
    function getAmountIn(uint256 amountOut, bool ethIn) external view returns (uint256) {
        return ethIn
            ? _amountIn(amountOut, _reserveEth, _reserveNds)
            : _amountIn(amountOut, _reserveNds, _reserveEth);
    }

    /// @notice Swaps all of msg.value for NDS, sent to `to`.
    /// @param minOut Reverts if less NDS would be paid out.
    /// @param to Receives the NDS.
    /// @param deadline Reverts after this time (unix seconds).
    /// @return amountOut NDS sent to `to`.
    function swapExactETHForNDS(uint256 minOut, address to, uint256 deadline)
        external
        payable
        nonReentrant
        ensure(deadline)
        returns (uint256 amountOut)
    {
        (uint256 reserveNds, uint256 reserveEth) = (_reserveNds, _reserveEth);
        amountOut = _amountOut(msg.value, reserveEth, reserveNds);
        _checkOutput(amountOut, minOut);
        _setReserves(reserveNds - amountOut, reserveEth + msg.value);
        emit Swap(msg.sender, to, true, msg.value, amountOut);
        nds.safeTransfer(to, amountOut);
    }

    /// @notice Swaps `amountIn` NDS (pulled from msg.sender; approve first) for ETH, sent to `to`.
    /// @param amountIn NDS to sell.
    /// @param minOut Reverts if less ETH would be paid out.
    /// @param to Receives the ETH.
    /// @param deadline Reverts after this time (unix seconds).
    /// @return amountOut ETH sent to `to`.
    function swapExactNDSForETH(uint256 amountIn, uint256 minOut, address to, uint256 deadline)
        external
        nonReentrant
        ensure(deadline)
        returns (uint256 amountOut)
    {
        if (to == address(0)) revert ZeroAddress();
        (uint256 reserveNds, uint256 reserveEth) = (_reserveNds, _reserveEth);
        amountOut = _amountOut(amountIn, reserveNds, reserveEth);
        _checkOutput(amountOut, minOut);
        _setReserves(reserveNds + amountIn, reserveEth - amountOut);
        emit Swap(msg.sender, to, false, amountIn, amountOut);
        nds.safeTransferFrom(msg.sender, address(this), amountIn);
        _sendEth(to, amountOut);
    }

    /// @notice Pays `months` periods of VPN access for msg.sender with ETH in one transaction: the
    /// pool swaps exactly the ETH needed for the NDS cost (`pricePerPeriod * months`), pays the
    /// SubscriptionManager, and refunds the rest of msg.value to msg.sender.
    /// @dev msg.value is the most ETH the caller accepts to pay; quote it with
    /// `getAmountIn(pricePerPeriod * months, true)` plus a slippage margin. The price read here is
    /// passed as `maxPrice`, so a price change cannot land between the quote and the payment.
    /// @param months Periods to buy (1..MAX_MONTHS of the SubscriptionManager).
    /// @param deadline Reverts after this time (unix seconds).
    /// @return newExpiry msg.sender's new expiry, from the SubscriptionManager.
    function buySubscriptionWithETH(uint32 months, uint256 deadline)
        external
        payable
        nonReentrant
        ensure(deadline)
        returns (uint64 newExpiry)
    {
        uint256 price = subscriptions.pricePerPeriod();
        uint256 cost = price * months;
        (uint256 reserveNds, uint256 reserveEth) = (_reserveNds, _reserveEth);
        uint256 ethIn = _amountIn(cost, reserveEth, reserveNds);
        if (ethIn > msg.value) revert ExcessiveInput(ethIn, msg.value);
        _setReserves(reserveNds - cost, reserveEth + ethIn);
        emit Swap(msg.sender, address(subscriptions), true, ethIn, cost);
        emit SubscriptionBought(msg.sender, months, ethIn, cost);
        nds.forceApprove(address(subscriptions), cost);
        newExpiry = subscriptions.subscribe(msg.sender, months, price);
        if (msg.value > ethIn) _sendEth(msg.sender, msg.value - ethIn);
    }

    /// @notice The pool's reserves, as used for pricing (donations are not counted).
    /// @return ndsReserve NDS reserve, in wei.
    /// @return ethReserve ETH reserve, in wei.
    function reserves() external view returns (uint256 ndsReserve, uint256 ethReserve) {
        return (_reserveNds, _reserveEth);
    }

    function _setReserves(uint256 reserveNds, uint256 reserveEth) private {
        (_reserveNds, _reserveEth) =
        (SafeCast.toUint112(reserveNds), SafeCast.toUint112(reserveEth));
    }

    function _sendEth(address to, uint256 amount) private {
        if (!LowLevelCall.callNoReturn(to, amount, "")) revert EthTransferFailed();
    }

    function _checkOutput(uint256 amountOut, uint256 minOut) private pure {
        if (amountOut == 0 || amountOut < minOut) revert InsufficientOutput(amountOut, minOut);
    }

    function _amountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut)
        private
        pure
        returns (uint256)
    {
        if (amountIn == 0) revert ZeroAmount();
        if (reserveIn == 0 || reserveOut == 0) revert InsufficientLiquidity();
        uint256 amountInWithFee = amountIn * 997;
        return amountInWithFee * reserveOut / (reserveIn * 1000 + amountInWithFee);
    }

    function _amountIn(uint256 amountOut, uint256 reserveIn, uint256 reserveOut)
        private
        pure
        returns (uint256)
    {
        if (amountOut == 0) revert ZeroAmount();
        if (reserveIn == 0 || amountOut >= reserveOut) revert InsufficientLiquidity();
        return reserveIn * amountOut * 1000 / ((reserveOut - amountOut) * 997) + 1;
    }
}
