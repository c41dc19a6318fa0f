// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {NDSToken} from "../src/NDSToken.sol";
import {NodusSwap} from "../src/NodusSwap.sol";
import {ISubscriptionManager} from "../src/interfaces/ISubscriptionManager.sol";

/// @dev Test-only stand-in for the SubscriptionManager: pulls price * months from msg.sender and
/// extends the beneficiary's expiry by months * 30 days from max(now, expiry).
contract MockSubscriptionManager is ISubscriptionManager {
    uint256 public constant PERIOD = 30 days;
    uint32 public constant MAX_MONTHS = 36;

    IERC20 public immutable token;
    uint256 public pricePerPeriod;
    mapping(address subscriber => uint64 expiry) public expiresAt;

    error InvalidMonths(uint32 months);
    error PriceAboveMax(uint256 price, uint256 maxPrice);

    constructor(IERC20 token_, uint256 price) {
        token = token_;
        pricePerPeriod = price;
    }

    function setPrice(uint256 price) external {
        pricePerPeriod = price;
    }

    function subscribe(address beneficiary, uint32 months, uint256 maxPrice)
        external
        returns (uint64 newExpiry)
    {
        if (months == 0 || months > MAX_MONTHS) revert InvalidMonths(months);
        if (pricePerPeriod > maxPrice) revert PriceAboveMax(pricePerPeriod, maxPrice);
        uint256 start = Math.max(block.timestamp, expiresAt[beneficiary]);
        newExpiry = SafeCast.toUint64(start + months * PERIOD);
        expiresAt[beneficiary] = newExpiry;
        require(token.transferFrom(msg.sender, address(this), pricePerPeriod * months), "pull");
    }
}

/// @dev Receives ETH from the pool and re-enters it. With `bubble` it reverts with the guard's
/// error (so the pool's ETH transfer fails); without, it records the error and accepts the ETH.
contract Reenterer {
    NodusSwap internal immutable pool;
    bool internal immutable bubble;
    bytes public reentryError;

    constructor(NodusSwap pool_, bool bubble_) {
        pool = pool_;
        bubble = bubble_;
    }

    function buy(uint32 months) external payable {
        pool.buySubscriptionWithETH{value: msg.value}(months, block.timestamp);
    }

    receive() external payable {
        try pool.swapExactETHForNDS{value: msg.value}(0, address(this), block.timestamp) {}
        catch (bytes memory err) {
            if (bubble) {
                assembly ("memory-safe") {
                    revert(add(err, 0x20), mload(err))
                }
            }
            reentryError = err;
        }
    }
}

contract NodusSwapTest is Test {
    uint256 internal constant SUPPLY = 1_000_000_000 ether;
    uint256 internal constant POOL_NDS = 1_000_000 ether;
    uint256 internal constant POOL_ETH = 100 ether;
    uint256 internal constant PRICE = 10 ether;

    NDSToken internal token;
    MockSubscriptionManager internal subs;
    NodusSwap internal pool;

    address internal lp = makeAddr("lp");
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");

    function setUp() public {
        token = new NDSToken(address(this), SUPPLY);
        subs = new MockSubscriptionManager(token, PRICE);
        pool = new NodusSwap(token, subs);
        for (uint256 i; i < 3; ++i) {
            address user = [lp, alice, bob][i];
            assertTrue(token.transfer(user, 10_000_000 ether));
            vm.deal(user, 10_000 ether);
            vm.prank(user);
            token.approve(address(pool), type(uint256).max);
        }
        vm.prank(lp);
        pool.addLiquidity{value: POOL_ETH}(POOL_NDS, 0, lp, block.timestamp);
    }

    // ---------------------------------------------------------------- helpers

    function _freshPool() internal returns (NodusSwap fresh) {
        fresh = new NodusSwap(token, subs);
        vm.prank(lp);
        token.approve(address(fresh), type(uint256).max);
    }

    function _k() internal view returns (uint256) {
        (uint256 n, uint256 e) = pool.reserves();
        return n * e;
    }

    function _assertReservesBacked() internal view {
        (uint256 n, uint256 e) = pool.reserves();
        assertEq(token.balanceOf(address(pool)), n, "nds balance == reserve");
        assertEq(address(pool).balance, e, "eth balance == reserve");
    }

    // ---------------------------------------------------------------- constructor / metadata

    function test_Metadata() public view {
        assertEq(pool.name(), "Nodus NDS/ETH LP");
        assertEq(pool.symbol(), "NDS-ETH-LP");
        assertEq(pool.decimals(), 18);
        assertEq(address(pool.nds()), address(token));
        assertEq(address(pool.subscriptions()), address(subs));
        assertEq(pool.MINIMUM_LIQUIDITY(), 1000);
    }

    function test_RevertWhen_ConstructorZeroAddress() public {
        vm.expectRevert(NodusSwap.ZeroAddress.selector);
        new NodusSwap(IERC20(address(0)), subs);
        vm.expectRevert(NodusSwap.ZeroAddress.selector);
        new NodusSwap(token, ISubscriptionManager(address(0)));
    }

    // ---------------------------------------------------------------- addLiquidity

    function test_AddLiquidity_First() public {
        NodusSwap fresh = _freshPool();
        uint256 expected = Math.sqrt(POOL_NDS * POOL_ETH) - 1000;
        vm.expectEmit(address(fresh));
        emit NodusSwap.LiquidityAdded(lp, alice, POOL_NDS, POOL_ETH, expected);
        vm.prank(lp);
        uint256 liquidity =
            fresh.addLiquidity{value: POOL_ETH}(POOL_NDS, expected, alice, block.timestamp);
        assertEq(liquidity, expected);
        assertEq(fresh.balanceOf(alice), expected);
        assertEq(fresh.balanceOf(fresh.DEAD()), 1000);
        assertEq(fresh.totalSupply(), expected + 1000);
        (uint256 n, uint256 e) = fresh.reserves();
        assertEq(n, POOL_NDS);
        assertEq(e, POOL_ETH);
        assertEq(token.balanceOf(address(fresh)), POOL_NDS);
        assertEq(address(fresh).balance, POOL_ETH);
    }

    function test_RevertWhen_FirstDepositTooSmall() public {
        NodusSwap fresh = _freshPool();
        // sqrt(1000 * 1000) == MINIMUM_LIQUIDITY: nothing left to mint.
        vm.prank(lp);
        vm.expectRevert(NodusSwap.InsufficientLiquidity.selector);
        fresh.addLiquidity{value: 1000}(1000, 0, lp, block.timestamp);
    }

    function test_AddLiquidity_PullsOnlyNdsNeeded() public {
        uint256 supply = pool.totalSupply();
        uint256 ndsNeeded = 10 ether * POOL_NDS / POOL_ETH;
        uint256 expected = 10 ether * supply / POOL_ETH;
        uint256 before = token.balanceOf(alice);
        vm.expectEmit(address(pool));
        emit NodusSwap.LiquidityAdded(alice, bob, ndsNeeded, 10 ether, expected);
        vm.prank(alice);
        uint256 liquidity =
            pool.addLiquidity{value: 10 ether}(ndsNeeded * 2, 0, bob, block.timestamp);
        assertEq(liquidity, expected);
        assertEq(pool.balanceOf(bob), expected);
        assertEq(before - token.balanceOf(alice), ndsNeeded, "only ndsNeeded pulled");
        _assertReservesBacked();
    }

    function test_RevertWhen_AddLiquidityExcessiveNds() public {
        uint256 ndsNeeded = 1 ether * POOL_NDS / POOL_ETH;
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(NodusSwap.ExcessiveInput.selector, ndsNeeded, ndsNeeded - 1)
        );
        pool.addLiquidity{value: 1 ether}(ndsNeeded - 1, 0, alice, block.timestamp);
    }

    function test_RevertWhen_AddLiquidityZeroAmounts() public {
        vm.startPrank(alice);
        vm.expectRevert(NodusSwap.ZeroAmount.selector);
        pool.addLiquidity{value: 0}(1 ether, 0, alice, block.timestamp);
        vm.expectRevert(NodusSwap.ZeroAmount.selector);
        pool.addLiquidity{value: 1 ether}(0, 0, alice, block.timestamp);
        vm.stopPrank();
    }

    function test_RevertWhen_AddLiquidityMintsNothing() public {
        NodusSwap fresh = _freshPool();
        vm.startPrank(lp);
        fresh.addLiquidity{value: 1 ether}(1e6, 0, lp, block.timestamp);
        // 1 wei of ETH needs 1e6 * 1 / 1e18 == 0 NDS: zero shares.
        vm.expectRevert(NodusSwap.InsufficientLiquidity.selector);
        fresh.addLiquidity{value: 1}(1e6, 0, lp, block.timestamp);
        vm.stopPrank();
    }

    function test_RevertWhen_AddLiquidityBelowMin() public {
        uint256 expected = 1 ether * pool.totalSupply() / POOL_ETH;
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(NodusSwap.InsufficientOutput.selector, expected, expected + 1)
        );
        pool.addLiquidity{value: 1 ether}(type(uint256).max, expected + 1, alice, block.timestamp);
    }

    function test_RevertWhen_AddLiquidityExpired() public {
        vm.prank(alice);
        vm.expectRevert(NodusSwap.Expired.selector);
        pool.addLiquidity{value: 1 ether}(1e22, 0, alice, block.timestamp - 1);
    }

    function test_RevertWhen_AddLiquidityToZeroAddress() public {
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InvalidReceiver.selector, address(0))
        );
        pool.addLiquidity{value: 1 ether}(type(uint256).max, 0, address(0), block.timestamp);
    }

    function test_RevertWhen_AddLiquidityOverflowsReserves() public {
        NodusSwap fresh = _freshPool();
        vm.deal(lp, 2 ** 112);
        vm.prank(lp);
        vm.expectRevert(
            abi.encodeWithSelector(SafeCast.SafeCastOverflowedUintDowncast.selector, 112, 2 ** 112)
        );
        fresh.addLiquidity{value: 2 ** 112}(1 ether, 0, lp, block.timestamp);
    }

    function testFuzz_AddLiquidity_NeverDilutes(uint256 ethIn, uint256 extraNds) public {
        ethIn = bound(ethIn, 1, 1000 ether);
        extraNds = bound(extraNds, 0, 1 ether);
        (uint256 n0, uint256 e0) = pool.reserves();
        uint256 s0 = pool.totalSupply();
        uint256 ndsNeeded = ethIn * n0 / e0;
        vm.prank(alice);
        try pool.addLiquidity{value: ethIn}(
            ndsNeeded + extraNds, 0, alice, block.timestamp
        ) returns (
            uint256 liquidity
        ) {
            (uint256 n1, uint256 e1) = pool.reserves();
            assertEq(n1, n0 + ndsNeeded);
            assertEq(e1, e0 + ethIn);
            // Each share is backed by at least as much of each asset as before.
            assertGe(n1 * s0, n0 * (s0 + liquidity));
            assertGe(e1 * s0, e0 * (s0 + liquidity));
            _assertReservesBacked();
        } catch (bytes memory err) {
            assertEq(err, abi.encodeWithSelector(NodusSwap.InsufficientLiquidity.selector));
            assertTrue(ethIn * s0 / e0 == 0 || ndsNeeded * s0 / n0 == 0);
        }
    }

    // ---------------------------------------------------------------- removeLiquidity

    function test_RemoveLiquidity() public {
        uint256 supply = pool.totalSupply();
        uint256 shares = pool.balanceOf(lp) / 4;
        uint256 ndsOut = shares * POOL_NDS / supply;
        uint256 ethOut = shares * POOL_ETH / supply;
        uint256 ndsBefore = token.balanceOf(bob);
        uint256 ethBefore = bob.balance;
        vm.expectEmit(address(pool));
        emit NodusSwap.LiquidityRemoved(lp, bob, ndsOut, ethOut, shares);
        vm.prank(lp);
        (uint256 n, uint256 e) = pool.removeLiquidity(shares, ndsOut, ethOut, bob, block.timestamp);
        assertEq(n, ndsOut);
        assertEq(e, ethOut);
        assertEq(token.balanceOf(bob) - ndsBefore, ndsOut);
        assertEq(bob.balance - ethBefore, ethOut);
        assertEq(pool.totalSupply(), supply - shares);
        _assertReservesBacked();
    }

    function test_RemoveLiquidity_AllButLocked() public {
        uint256 shares = pool.balanceOf(lp);
        vm.prank(lp);
        pool.removeLiquidity(shares, 0, 0, lp, block.timestamp);
        assertEq(pool.totalSupply(), 1000);
        (uint256 n, uint256 e) = pool.reserves();
        assertGt(n, 0);
        assertGt(e, 0);
        _assertReservesBacked();
    }

    function test_RevertWhen_RemoveLiquidityZero() public {
        vm.prank(lp);
        vm.expectRevert(NodusSwap.ZeroAmount.selector);
        pool.removeLiquidity(0, 0, 0, lp, block.timestamp);
    }

    function test_RevertWhen_RemoveLiquidityToZeroAddress() public {
        vm.prank(lp);
        vm.expectRevert(NodusSwap.ZeroAddress.selector);
        pool.removeLiquidity(1 ether, 0, 0, address(0), block.timestamp);
    }

    function test_RevertWhen_RemoveLiquidityDust() public {
        // 1 share is worth 1e20 / 1e22 == 0 wei of ETH.
        vm.prank(lp);
        vm.expectRevert(NodusSwap.InsufficientLiquidity.selector);
        pool.removeLiquidity(1, 0, 0, lp, block.timestamp);
    }

    function test_RevertWhen_RemoveLiquidityBelowMin() public {
        uint256 shares = 1 ether;
        uint256 supply = pool.totalSupply();
        uint256 ndsOut = shares * POOL_NDS / supply;
        uint256 ethOut = shares * POOL_ETH / supply;
        vm.startPrank(lp);
        vm.expectRevert(
            abi.encodeWithSelector(NodusSwap.InsufficientOutput.selector, ndsOut, ndsOut + 1)
        );
        pool.removeLiquidity(shares, ndsOut + 1, 0, lp, block.timestamp);
        vm.expectRevert(
            abi.encodeWithSelector(NodusSwap.InsufficientOutput.selector, ethOut, ethOut + 1)
        );
        pool.removeLiquidity(shares, 0, ethOut + 1, lp, block.timestamp);
        vm.stopPrank();
    }

    function test_RevertWhen_RemoveLiquidityExpired() public {
        vm.prank(lp);
        vm.expectRevert(NodusSwap.Expired.selector);
        pool.removeLiquidity(1 ether, 0, 0, lp, block.timestamp - 1);
    }

    function test_RevertWhen_RemoveLiquidityMoreThanOwned() public {
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientBalance.selector, alice, 0, 1 ether
            )
        );
        pool.removeLiquidity(1 ether, 0, 0, alice, block.timestamp);
    }

    function test_RevertWhen_RemoveLiquidityReentered() public {
        Reenterer attacker = new Reenterer(pool, true);
        vm.prank(lp);
        vm.expectRevert(NodusSwap.EthTransferFailed.selector);
        pool.removeLiquidity(1 ether, 0, 0, address(attacker), block.timestamp);
    }

    function testFuzz_AddRemoveRoundTrip_NoProfit(uint256 ethIn) public {
        ethIn = bound(ethIn, 1e9, 1000 ether);
        uint256 ndsBefore = token.balanceOf(alice);
        uint256 ethBefore = alice.balance;
        vm.startPrank(alice);
        uint256 liquidity =
            pool.addLiquidity{value: ethIn}(type(uint256).max, 0, alice, block.timestamp);
        pool.removeLiquidity(liquidity, 0, 0, alice, block.timestamp);
        vm.stopPrank();
        assertLe(token.balanceOf(alice), ndsBefore);
        assertLe(alice.balance, ethBefore);
        _assertReservesBacked();
    }

    // ---------------------------------------------------------------- quotes

    function test_GetAmountOut() public view {
        uint256 withFee = 1 ether * 997;
        assertEq(pool.getAmountOut(1 ether, true), withFee * POOL_NDS / (POOL_ETH * 1000 + withFee));
        assertEq(
            pool.getAmountOut(1 ether, false), withFee * POOL_ETH / (POOL_NDS * 1000 + withFee)
        );
    }

    function test_GetAmountIn() public view {
        uint256 out = 1000 ether;
        assertEq(pool.getAmountIn(out, true), POOL_ETH * out * 1000 / ((POOL_NDS - out) * 997) + 1);
        out = 1 ether;
        assertEq(pool.getAmountIn(out, false), POOL_NDS * out * 1000 / ((POOL_ETH - out) * 997) + 1);
    }

    function test_RevertWhen_QuoteZero() public {
        vm.expectRevert(NodusSwap.ZeroAmount.selector);
        pool.getAmountOut(0, true);
        vm.expectRevert(NodusSwap.ZeroAmount.selector);
        pool.getAmountIn(0, false);
    }

    function test_RevertWhen_QuoteWithoutLiquidity() public {
        NodusSwap fresh = _freshPool();
        vm.expectRevert(NodusSwap.InsufficientLiquidity.selector);
        fresh.getAmountOut(1 ether, true);
        vm.expectRevert(NodusSwap.InsufficientLiquidity.selector);
        fresh.getAmountIn(1 ether, false);
        // Asking for the whole reserve (or more) can never be paid.
        vm.expectRevert(NodusSwap.InsufficientLiquidity.selector);
        pool.getAmountIn(POOL_ETH, false);
        vm.expectRevert(NodusSwap.InsufficientLiquidity.selector);
        pool.getAmountIn(POOL_NDS, true);
    }

    function testFuzz_GetAmountIn_IsMinimal(uint256 amountOut, bool ethIn) public view {
        (uint256 n, uint256 e) = pool.reserves();
        amountOut = bound(amountOut, 1, (ethIn ? n : e) - 1);
        uint256 amountIn = pool.getAmountIn(amountOut, ethIn);
        assertGe(pool.getAmountOut(amountIn, ethIn), amountOut, "enough");
        if (amountIn > 2) {
            assertLt(pool.getAmountOut(amountIn - 2, ethIn), amountOut, "near minimal");
        }
    }

    // ---------------------------------------------------------------- swapExactETHForNDS

    function test_SwapExactETHForNDS() public {
        uint256 expected = pool.getAmountOut(1 ether, true);
        uint256 k0 = _k();
        vm.expectEmit(address(pool));
        emit NodusSwap.Swap(alice, bob, true, 1 ether, expected);
        vm.prank(alice);
        uint256 out = pool.swapExactETHForNDS{value: 1 ether}(expected, bob, block.timestamp);
        assertEq(out, expected);
        assertEq(token.balanceOf(bob), 10_000_000 ether + expected);
        (uint256 n, uint256 e) = pool.reserves();
        assertEq(n, POOL_NDS - expected);
        assertEq(e, POOL_ETH + 1 ether);
        assertGt(_k(), k0);
        _assertReservesBacked();
    }

    function test_RevertWhen_SwapETHBelowMin() public {
        uint256 expected = pool.getAmountOut(1 ether, true);
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(NodusSwap.InsufficientOutput.selector, expected, expected + 1)
        );
        pool.swapExactETHForNDS{value: 1 ether}(expected + 1, alice, block.timestamp);
    }

    function test_RevertWhen_SwapETHZero() public {
        vm.prank(alice);
        vm.expectRevert(NodusSwap.ZeroAmount.selector);
        pool.swapExactETHForNDS{value: 0}(0, alice, block.timestamp);
    }

    function test_RevertWhen_SwapETHExpired() public {
        vm.prank(alice);
        vm.expectRevert(NodusSwap.Expired.selector);
        pool.swapExactETHForNDS{value: 1 ether}(0, alice, block.timestamp - 1);
    }

    function test_RevertWhen_SwapETHToZeroAddress() public {
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InvalidReceiver.selector, address(0))
        );
        pool.swapExactETHForNDS{value: 1 ether}(0, address(0), block.timestamp);
    }

    function test_RevertWhen_SwapETHWithoutLiquidity() public {
        NodusSwap fresh = _freshPool();
        vm.prank(alice);
        vm.expectRevert(NodusSwap.InsufficientLiquidity.selector);
        fresh.swapExactETHForNDS{value: 1 ether}(0, alice, block.timestamp);
    }

    function test_RevertWhen_SwapETHOutputZero() public {
        NodusSwap fresh = _freshPool();
        vm.startPrank(lp);
        fresh.addLiquidity{value: 1 ether}(1e6, 0, lp, block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(NodusSwap.InsufficientOutput.selector, 0, 0));
        fresh.swapExactETHForNDS{value: 1}(0, lp, block.timestamp);
        vm.stopPrank();
    }

    function testFuzz_SwapExactETHForNDS(uint256 amountIn) public {
        amountIn = bound(amountIn, 1, 10_000 ether);
        uint256 expected = pool.getAmountOut(amountIn, true);
        uint256 k0 = _k();
        vm.prank(alice);
        uint256 out = pool.swapExactETHForNDS{value: amountIn}(0, bob, block.timestamp);
        assertEq(out, expected);
        assertLt(out, POOL_NDS);
        assertGe(_k(), k0);
        _assertReservesBacked();
    }

    // ---------------------------------------------------------------- swapExactNDSForETH

    function test_SwapExactNDSForETH() public {
        uint256 amountIn = 10_000 ether;
        uint256 expected = pool.getAmountOut(amountIn, false);
        uint256 k0 = _k();
        uint256 ethBefore = bob.balance;
        vm.expectEmit(address(pool));
        emit NodusSwap.Swap(alice, bob, false, amountIn, expected);
        vm.prank(alice);
        uint256 out = pool.swapExactNDSForETH(amountIn, expected, bob, block.timestamp);
        assertEq(out, expected);
        assertEq(bob.balance - ethBefore, expected);
        assertEq(token.balanceOf(alice), 10_000_000 ether - amountIn);
        (uint256 n, uint256 e) = pool.reserves();
        assertEq(n, POOL_NDS + amountIn);
        assertEq(e, POOL_ETH - expected);
        assertGt(_k(), k0);
        _assertReservesBacked();
    }

    function test_RevertWhen_SwapNDSBelowMin() public {
        uint256 expected = pool.getAmountOut(1 ether, false);
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(NodusSwap.InsufficientOutput.selector, expected, expected + 1)
        );
        pool.swapExactNDSForETH(1 ether, expected + 1, alice, block.timestamp);
    }

    function test_RevertWhen_SwapNDSOutputZero() public {
        // 1 wei of NDS is worth 997e20 / 1e27 == 0 wei of ETH.
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodusSwap.InsufficientOutput.selector, 0, 0));
        pool.swapExactNDSForETH(1, 0, alice, block.timestamp);
    }

    function test_RevertWhen_SwapNDSZero() public {
        vm.prank(alice);
        vm.expectRevert(NodusSwap.ZeroAmount.selector);
        pool.swapExactNDSForETH(0, 0, alice, block.timestamp);
    }

    function test_RevertWhen_SwapNDSToZeroAddress() public {
        vm.prank(alice);
        vm.expectRevert(NodusSwap.ZeroAddress.selector);
        pool.swapExactNDSForETH(1 ether, 0, address(0), block.timestamp);
    }

    function test_RevertWhen_SwapNDSExpired() public {
        vm.prank(alice);
        vm.expectRevert(NodusSwap.Expired.selector);
        pool.swapExactNDSForETH(1 ether, 0, alice, block.timestamp - 1);
    }

    function test_RevertWhen_SwapNDSWithoutLiquidity() public {
        NodusSwap fresh = _freshPool();
        vm.prank(alice);
        vm.expectRevert(NodusSwap.InsufficientLiquidity.selector);
        fresh.swapExactNDSForETH(1 ether, 0, alice, block.timestamp);
    }

    function test_RevertWhen_SwapNDSWithoutAllowance() public {
        address carol = makeAddr("carol");
        assertTrue(token.transfer(carol, 1 ether));
        vm.prank(carol);
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(pool), 0, 1 ether
            )
        );
        pool.swapExactNDSForETH(1 ether, 0, carol, block.timestamp);
    }

    function test_RevertWhen_SwapNDSReentered() public {
        Reenterer attacker = new Reenterer(pool, true);
        vm.prank(alice);
        vm.expectRevert(NodusSwap.EthTransferFailed.selector);
        pool.swapExactNDSForETH(1000 ether, 0, address(attacker), block.timestamp);
    }

    function test_ReentryBlockedByGuard() public {
        // The attacker swallows the error so the outer swap completes: the inner call was
        // stopped by the reentrancy guard, not by anything else.
        Reenterer attacker = new Reenterer(pool, false);
        vm.prank(alice);
        pool.swapExactNDSForETH(1000 ether, 0, address(attacker), block.timestamp);
        assertEq(
            attacker.reentryError(),
            abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector)
        );
        _assertReservesBacked();
    }

    function testFuzz_SwapExactNDSForETH(uint256 amountIn) public {
        amountIn = bound(amountIn, 1e15, 10_000_000 ether);
        uint256 expected = pool.getAmountOut(amountIn, false);
        uint256 k0 = _k();
        vm.prank(alice);
        uint256 out = pool.swapExactNDSForETH(amountIn, 0, bob, block.timestamp);
        assertEq(out, expected);
        assertLt(out, POOL_ETH);
        assertGe(_k(), k0);
        _assertReservesBacked();
    }

    // ---------------------------------------------------------------- plain ETH

    function test_RevertWhen_PlainEthSent() public {
        vm.prank(alice);
        (bool ok,) = address(pool).call{value: 1 ether}("");
        assertFalse(ok, "receive");
        vm.prank(alice);
        (ok,) = address(pool).call{value: 1 ether}(hex"12345678");
        assertFalse(ok, "fallback");
        assertEq(address(pool).balance, POOL_ETH);
    }

    function test_DonationsIgnored() public {
        uint256 quote = pool.getAmountOut(1 ether, true);
        assertTrue(token.transfer(address(pool), 1000 ether));
        vm.deal(address(pool), address(pool).balance + 5 ether); // e.g. a selfdestruct
        (uint256 n, uint256 e) = pool.reserves();
        assertEq(n, POOL_NDS);
        assertEq(e, POOL_ETH);
        assertEq(pool.getAmountOut(1 ether, true), quote);
    }

    // ---------------------------------------------------------------- buySubscriptionWithETH

    function test_BuySubscriptionWithETH() public {
        uint32 months = 3;
        uint256 cost = PRICE * months;
        uint256 ethIn = pool.getAmountIn(cost, true);
        uint256 sent = ethIn + 0.5 ether;
        uint256 ethBefore = alice.balance;
        uint256 ndsBefore = token.balanceOf(alice);
        vm.expectEmit(address(pool));
        emit NodusSwap.Swap(alice, address(subs), true, ethIn, cost);
        vm.expectEmit(address(pool));
        emit NodusSwap.SubscriptionBought(alice, months, ethIn, cost);
        vm.prank(alice);
        uint64 expiry = pool.buySubscriptionWithETH{value: sent}(months, block.timestamp);

        assertEq(expiry, block.timestamp + months * 30 days);
        assertEq(subs.expiresAt(alice), expiry);
        assertEq(ethBefore - alice.balance, ethIn, "refund == msg.value - ethIn");
        assertEq(token.balanceOf(alice), ndsBefore, "subscriber's NDS untouched");
        assertEq(token.balanceOf(address(subs)), cost);
        assertEq(token.allowance(address(pool), address(subs)), 0);
        (uint256 n, uint256 e) = pool.reserves();
        assertEq(n, POOL_NDS - cost);
        assertEq(e, POOL_ETH + ethIn);
        _assertReservesBacked();
    }

    function test_BuySubscriptionWithETH_ExtendsExisting() public {
        vm.startPrank(alice);
        uint64 first = pool.buySubscriptionWithETH{value: 1 ether}(1, block.timestamp);
        vm.warp(block.timestamp + 10 days);
        uint64 second = pool.buySubscriptionWithETH{value: 1 ether}(2, block.timestamp);
        vm.stopPrank();
        assertEq(second, first + 2 * 30 days);
        assertEq(subs.expiresAt(alice), second);
        _assertReservesBacked();
    }

    function test_BuySubscriptionWithETH_ExactValueNoRefund() public {
        uint256 ethIn = pool.getAmountIn(PRICE, true);
        uint256 ethBefore = alice.balance;
        vm.prank(alice);
        pool.buySubscriptionWithETH{value: ethIn}(1, block.timestamp);
        assertEq(ethBefore - alice.balance, ethIn);
        _assertReservesBacked();
    }

    function test_RevertWhen_BuySubscriptionExcessiveInput() public {
        uint256 ethIn = pool.getAmountIn(PRICE * 2, true);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NodusSwap.ExcessiveInput.selector, ethIn, ethIn - 1));
        pool.buySubscriptionWithETH{value: ethIn - 1}(2, block.timestamp);
    }

    function test_RevertWhen_BuySubscriptionExpired() public {
        vm.prank(alice);
        vm.expectRevert(NodusSwap.Expired.selector);
        pool.buySubscriptionWithETH{value: 1 ether}(1, block.timestamp - 1);
    }

    function test_RevertWhen_BuySubscriptionZeroMonths() public {
        vm.prank(alice);
        vm.expectRevert(NodusSwap.ZeroAmount.selector);
        pool.buySubscriptionWithETH{value: 1 ether}(0, block.timestamp);
    }

    function test_RevertWhen_BuySubscriptionTooManyMonths() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(MockSubscriptionManager.InvalidMonths.selector, 37));
        pool.buySubscriptionWithETH{value: 1 ether}(37, block.timestamp);
    }

    function test_RevertWhen_BuySubscriptionCostExceedsReserve() public {
        subs.setPrice(POOL_NDS);
        vm.prank(alice);
        vm.expectRevert(NodusSwap.InsufficientLiquidity.selector);
        pool.buySubscriptionWithETH{value: 1000 ether}(1, block.timestamp);
    }

    function test_RevertWhen_BuySubscriptionRefundReentered() public {
        Reenterer attacker = new Reenterer(pool, true);
        vm.deal(address(attacker), 1 ether);
        vm.expectRevert(NodusSwap.EthTransferFailed.selector);
        attacker.buy{value: 1 ether}(1);
    }

    function testFuzz_BuySubscriptionWithETH(uint32 months, uint256 extra) public {
        months = uint32(bound(months, 1, 36));
        extra = bound(extra, 0, 100 ether);
        uint256 cost = PRICE * months;
        uint256 ethIn = pool.getAmountIn(cost, true);
        uint256 k0 = _k();
        uint256 ethBefore = alice.balance;
        vm.prank(alice);
        uint64 expiry = pool.buySubscriptionWithETH{value: ethIn + extra}(months, block.timestamp);
        assertEq(expiry, block.timestamp + uint256(months) * 30 days);
        assertEq(ethBefore - alice.balance, ethIn);
        assertGe(_k(), k0);
        _assertReservesBacked();
    }

    // ---------------------------------------------------------------- gas

    // Bound: a swap transaction must cost <= 80,000 gas in total. `used` is the gas of the call as
    // seen from this contract, with the pool, token and recipient made cold first so it matches a
    // fresh transaction (it also includes the CALL overhead, and for ETH in the 9,000 value
    // surcharge a real transaction does not pay: an overestimate). 21,000 is the base transaction
    // cost and 1,500 approximates the calldata cost (100-132 bytes at <= 16 gas each).
    uint256 internal constant GAS_LIMIT = 80_000;
    uint256 internal constant TX_OVERHEAD = 21_000 + 1_500;

    function _cool(address to) internal {
        vm.cool(address(pool));
        vm.cool(address(token));
        vm.cool(to);
    }

    function test_Gas_SwapExactETHForNDS() public {
        // `to` already holds NDS (setUp), so no zero-to-nonzero balance write.
        _cool(bob);
        uint256 g = gasleft();
        pool.swapExactETHForNDS{value: 0.1 ether}(0, bob, type(uint256).max);
        uint256 used = g - gasleft();
        emit log_named_uint("swapExactETHForNDS gas incl. tx overhead", used + TX_OVERHEAD);
        assertLe(used + TX_OVERHEAD, GAS_LIMIT);
    }

    function test_Gas_SwapExactNDSForETH() public {
        // A finite allowance (so the allowance is written, as for most users) and a recipient
        // that already has ETH, as any account that pays for gas does.
        token.approve(address(pool), 1_000_000 ether);
        _cool(bob);
        uint256 g = gasleft();
        pool.swapExactNDSForETH(1000 ether, 0, bob, type(uint256).max);
        uint256 used = g - gasleft();
        emit log_named_uint("swapExactNDSForETH gas incl. tx overhead", used + TX_OVERHEAD);
        assertLe(used + TX_OVERHEAD, GAS_LIMIT);
    }

    function test_Gas_BuySubscriptionWithETH() public {
        // First purchase by this subscriber (new expiry slot), against the mock manager; the
        // number is reported only, the real SubscriptionManager's cost differs.
        _cool(address(subs));
        uint256 g = gasleft();
        pool.buySubscriptionWithETH{value: 1 ether}(1, type(uint256).max);
        uint256 used = g - gasleft();
        emit log_named_uint("buySubscriptionWithETH gas incl. tx overhead", used + TX_OVERHEAD);
    }

    receive() external payable {} // refunds of buySubscriptionWithETH
}
