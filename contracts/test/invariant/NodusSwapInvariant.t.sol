// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {NDSToken} from "../../src/NDSToken.sol";
import {NodusSwap} from "../../src/NodusSwap.sol";
import {MockSubscriptionManager} from "../NodusSwap.t.sol";

/// @dev Drives the pool with bounded random calls from a few actors. Properties that must hold
/// within one call (k per share, k across a swap, exact refunds and expiries) are checked here
/// and counted in ghost variables, because a failed assertion inside a handler would only be a
/// discarded revert (fail_on_revert = false); the invariants then require the counts to be zero.
contract NodusSwapHandler is CommonBase, StdCheats, StdUtils {
    NodusSwap public immutable pool;
    NDSToken public immutable token;
    MockSubscriptionManager public immutable subs;
    address[] public actors;

    /// Calls after which k / totalSupply^2 (reserves backing each LP share) went down.
    uint256 public ghostKPerShareDecreases;
    /// Liquidity adds or removals after which either reserve per LP share went down.
    uint256 public ghostShareDilutions;
    /// Swaps (including buySubscriptionWithETH) after which k = reserveNds * reserveEth went down.
    uint256 public ghostSwapKDecreases;
    /// buySubscriptionWithETH calls that charged other than getAmountIn or set a wrong expiry.
    uint256 public ghostSubscriptionErrors;
    /// NDS paid to the SubscriptionManager through the pool.
    uint256 public ghostSubscriptionNds;
    /// Tokens and ETH sent to the pool outside its functions (which it must ignore).
    uint256 public ghostNdsDonated;
    uint256 public ghostEthDonated;

    constructor(NodusSwap pool_, NDSToken token_, MockSubscriptionManager subs_) {
        (pool, token, subs) = (pool_, token_, subs_);
        for (uint256 i; i < 4; ++i) {
            address actor = makeAddr(string.concat("actor", vm.toString(i)));
            actors.push(actor);
            vm.prank(actor);
            token.approve(address(pool), type(uint256).max);
        }
    }

    /// @dev Pool state around a handler call (memory, to keep the stack small).
    struct State {
        uint256 nds;
        uint256 eth;
        uint256 supply;
    }

    /// @dev Compares k / S^2 before and after the call as k1 * S0^2 >= k0 * S1^2, in 512-bit
    /// precision (k < 2^224 and S <= sqrt(k) < 2^112 since the reserves are uint112).
    modifier checkKPerShare() {
        State memory s0 = _state();
        _;
        State memory s1 = _state();
        uint256 k0 = s0.nds * s0.eth;
        if (
            s0.supply > 0
                && s1.nds * s1.eth
                    < Math.mulDiv(
                        k0, s1.supply * s1.supply, s0.supply * s0.supply, Math.Rounding.Ceil
                    )
        ) ++ghostKPerShareDecreases;
    }

    /// @dev For liquidity operations, which must not move the price: checks that neither reserve
    /// per share went down (nds1 / s1 >= nds0 / s0, and the same for ETH).
    modifier checkReservesPerShare() {
        State memory s0 = _state();
        _;
        State memory s1 = _state();
        if (
            s0.supply > 0
                && (s1.nds * s0.supply < s0.nds * s1.supply
                    || s1.eth * s0.supply < s0.eth * s1.supply)
        ) ++ghostShareDilutions;
    }

    /// @dev Checks that k did not go down across a swap.
    modifier checkSwapK() {
        uint256 k0 = _k();
        _;
        if (_k() < k0) ++ghostSwapKDecreases;
    }

    /// @notice First deposit: `nds` and `eth` as given. Later ones: `eth` ETH with the NDS needed
    /// at the current ratio plus up to 1 NDS of slack (which must not be taken).
    function addLiquidity(uint256 actorSeed, uint256 eth, uint256 nds)
        external
        checkKPerShare
        checkReservesPerShare
    {
        address actor = _actor(actorSeed);
        (uint256 reserveNds, uint256 reserveEth) = pool.reserves();
        uint256 supply = pool.totalSupply();
        eth = bound(eth, 1, 1000 ether);
        if (supply == 0) {
            nds = bound(nds, 1 ether, 10_000_000 ether);
        } else {
            uint256 needed = eth * reserveNds / reserveEth;
            if (Math.min(eth * supply / reserveEth, needed * supply / reserveNds) == 0) return;
            nds = needed + bound(nds, 0, 1 ether);
        }
        if (nds > token.balanceOf(actor)) return;
        vm.deal(actor, actor.balance + eth);
        vm.prank(actor);
        pool.addLiquidity{value: eth}(nds, 0, actor, block.timestamp);
    }

    /// @notice Burns between 1 share and all of the actor's shares.
    function removeLiquidity(uint256 actorSeed, uint256 liquidity)
        external
        checkKPerShare
        checkReservesPerShare
    {
        address actor = _actor(actorSeed);
        uint256 shares = pool.balanceOf(actor);
        if (shares == 0) return;
        liquidity = bound(liquidity, 1, shares);
        (uint256 reserveNds, uint256 reserveEth) = pool.reserves();
        uint256 supply = pool.totalSupply();
        if (liquidity * reserveNds / supply == 0 || liquidity * reserveEth / supply == 0) return;
        vm.prank(actor);
        pool.removeLiquidity(liquidity, 0, 0, _actor(actorSeed >> 8), block.timestamp);
    }

    /// @notice Swaps up to the whole ETH reserve (at most doubling it) for NDS.
    function swapExactETHForNDS(uint256 actorSeed, uint256 amountIn)
        external
        checkKPerShare
        checkSwapK
    {
        address actor = _actor(actorSeed);
        (, uint256 reserveEth) = pool.reserves();
        amountIn = bound(amountIn, 1, reserveEth);
        if (pool.getAmountOut(amountIn, true) == 0) return;
        vm.deal(actor, actor.balance + amountIn);
        vm.prank(actor);
        pool.swapExactETHForNDS{value: amountIn}(0, _actor(actorSeed >> 8), block.timestamp);
    }

    /// @notice Swaps up to the whole NDS reserve (at most doubling it) for ETH.
    function swapExactNDSForETH(uint256 actorSeed, uint256 amountIn)
        external
        checkKPerShare
        checkSwapK
    {
        address actor = _actor(actorSeed);
        (uint256 reserveNds,) = pool.reserves();
        amountIn = bound(amountIn, 1, Math.min(reserveNds, token.balanceOf(actor)));
        if (pool.getAmountOut(amountIn, false) == 0) return;
        vm.prank(actor);
        pool.swapExactNDSForETH(amountIn, 0, _actor(actorSeed >> 8), block.timestamp);
    }

    /// @notice Buys 1..36 months, sending up to 1 ETH more than needed; checks the refund and
    /// the new expiry.
    function buySubscriptionWithETH(uint256 actorSeed, uint256 months, uint256 extra)
        external
        checkKPerShare
        checkSwapK
    {
        address actor = _actor(actorSeed);
        months = bound(months, 1, 36);
        extra = bound(extra, 0, 1 ether);
        uint256 cost = subs.pricePerPeriod() * months;
        (uint256 reserveNds,) = pool.reserves();
        if (cost >= reserveNds) return;
        uint256 ethIn = pool.getAmountIn(cost, true);
        vm.deal(actor, actor.balance + ethIn + extra);
        uint256 balanceBefore = actor.balance;
        uint256 expected = Math.max(block.timestamp, subs.expiresAt(actor)) + months * 30 days;

        vm.prank(actor);
        uint64 expiry = pool.buySubscriptionWithETH{value: ethIn + extra}(
            SafeCast.toUint32(months), block.timestamp
        );

        if (balanceBefore - actor.balance != ethIn || expiry != expected) {
            ++ghostSubscriptionErrors;
        }
        ghostSubscriptionNds += cost;
    }

    /// @notice Sends NDS and forces ETH into the pool outside its functions.
    function donate(uint256 actorSeed, uint256 nds, uint256 eth) external checkKPerShare {
        address actor = _actor(actorSeed);
        nds = bound(nds, 0, Math.min(1000 ether, token.balanceOf(actor)));
        eth = bound(eth, 0, 1 ether);
        vm.prank(actor);
        require(token.transfer(address(pool), nds), "transfer");
        vm.deal(address(pool), address(pool).balance + eth); // as a selfdestruct would
        ghostNdsDonated += nds;
        ghostEthDonated += eth;
    }

    /// @notice Lets time pass, so subscriptions lapse or stack.
    function warp(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 0, 60 days));
    }

    function actorCount() external view returns (uint256) {
        return actors.length;
    }

    function _actor(uint256 seed) private view returns (address) {
        return actors[seed % actors.length];
    }

    function _state() private view returns (State memory state) {
        (state.nds, state.eth) = pool.reserves();
        state.supply = pool.totalSupply();
    }

    function _k() private view returns (uint256) {
        (uint256 reserveNds, uint256 reserveEth) = pool.reserves();
        return reserveNds * reserveEth;
    }
}

contract NodusSwapInvariantTest is Test {
    NDSToken internal token;
    MockSubscriptionManager internal subs;
    NodusSwap internal pool;
    NodusSwapHandler internal handler;

    function setUp() public {
        token = new NDSToken(address(this), 1_000_000_000 ether);
        subs = new MockSubscriptionManager(token, 10 ether);
        pool = new NodusSwap(token, subs);
        handler = new NodusSwapHandler(pool, token, subs);
        for (uint256 i; i < handler.actorCount(); ++i) {
            assertTrue(token.transfer(handler.actors(i), 200_000_000 ether));
        }
        handler.addLiquidity(0, 100 ether, 1_000_000 ether); // the first deposit

        bytes4[] memory selectors = new bytes4[](7);
        selectors[0] = NodusSwapHandler.addLiquidity.selector;
        selectors[1] = NodusSwapHandler.removeLiquidity.selector;
        selectors[2] = NodusSwapHandler.swapExactETHForNDS.selector;
        selectors[3] = NodusSwapHandler.swapExactNDSForETH.selector;
        selectors[4] = NodusSwapHandler.buySubscriptionWithETH.selector;
        selectors[5] = NodusSwapHandler.donate.selector;
        selectors[6] = NodusSwapHandler.warp.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    /// The reserves backing each LP share never shrink: fees and rounding only add to them.
    function invariant_kPerShareNeverDecreases() public view {
        assertEq(handler.ghostKPerShareDecreases(), 0);
    }

    /// Adding or removing liquidity never lowers either reserve per share (rounding favours the
    /// pool).
    function invariant_liquidityOpsNeverDilute() public view {
        assertEq(handler.ghostShareDilutions(), 0);
    }

    /// A swap never lowers k = reserveNds * reserveEth.
    function invariant_swapsNeverDecreaseK() public view {
        assertEq(handler.ghostSwapKDecreases(), 0);
    }

    /// The pool holds at least its reserves; exactly its reserves plus what was donated.
    function invariant_balancesCoverReserves() public view {
        (uint256 reserveNds, uint256 reserveEth) = pool.reserves();
        assertGe(token.balanceOf(address(pool)), reserveNds);
        assertGe(address(pool).balance, reserveEth);
        assertEq(token.balanceOf(address(pool)), reserveNds + handler.ghostNdsDonated());
        assertEq(address(pool).balance, reserveEth + handler.ghostEthDonated());
    }

    /// MINIMUM_LIQUIDITY stays locked, so the supply and both reserves never return to zero,
    /// and every other share belongs to an actor.
    function invariant_minimumLiquidityLocked() public view {
        uint256 locked = pool.MINIMUM_LIQUIDITY();
        assertEq(pool.balanceOf(pool.DEAD()), locked);
        assertGe(pool.totalSupply(), locked);
        (uint256 reserveNds, uint256 reserveEth) = pool.reserves();
        assertGt(reserveNds, 0);
        assertGt(reserveEth, 0);
        uint256 sum = locked;
        for (uint256 i; i < handler.actorCount(); ++i) {
            sum += pool.balanceOf(handler.actors(i));
        }
        assertEq(sum, pool.totalSupply());
    }

    /// Every purchase charged exactly getAmountIn, set the right expiry, and paid the exact cost.
    function invariant_subscriptionsExact() public view {
        assertEq(handler.ghostSubscriptionErrors(), 0);
        assertEq(token.balanceOf(address(subs)), handler.ghostSubscriptionNds());
        assertEq(token.allowance(address(pool), address(subs)), 0);
    }

    /// The pool rejects plain ETH whatever its state.
    function invariant_rejectsPlainEth() public {
        (bool ok,) = address(pool).call{value: 1}("");
        assertFalse(ok);
    }
}
