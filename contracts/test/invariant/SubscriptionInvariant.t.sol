// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {console2} from "forge-std/console2.sol";
import {NDSToken} from "../../src/NDSToken.sol";
import {RewardDistributor} from "../../src/RewardDistributor.sol";
import {SubscriptionManager} from "../../src/SubscriptionManager.sol";
import {NodusTestBase} from "../NodusTestBase.sol";

/// @notice Drives the SubscriptionManager the way its users and governance do: payers subscribe
/// for themselves or others, time passes, governance retunes price and split, anyone flushes.
/// Checks each payment against the expiry formula as it happens and keeps ghost totals of every
/// token movement.
contract SubscriptionHandler is CommonBase, StdCheats, StdUtils {
    uint64 internal constant PERIOD = 30 days;

    NDSToken internal immutable token;
    SubscriptionManager internal immutable manager;
    address internal immutable governance;
    address internal immutable rewardPool;
    address internal immutable treasury;

    address[] internal payers;
    address[] internal beneficiaries; // the payers and a few who never pay themselves

    /// @dev The fuzzer's block timestamp is not carried between calls: each call warps here first.
    uint256 public currentTime;

    // Ghosts.
    mapping(address beneficiary => uint64 expiry) public lastExpiry;
    bool public expiryWentBackwards;
    bool public expiryMismatch;
    bool public payerChargedWrongly;
    bool public paymentReverted;
    bool public flushMismatch;
    uint256 public ghostPaid;
    uint256 public ghostToRewardPool;
    uint256 public ghostToTreasury;
    uint256 public ghostAccrued; // sum of paid * bps / BPS since the last flush

    // Call counts, for the summary.
    uint256 public subscribeCalls;
    uint256 public giftCalls;
    uint256 public warpCalls;
    uint256 public priceChanges;
    uint256 public splitChanges;
    uint256 public flushes;

    constructor(
        NDSToken token_,
        SubscriptionManager manager_,
        address governance_,
        address[] memory payers_,
        address[] memory others
    ) {
        token = token_;
        manager = manager_;
        governance = governance_;
        rewardPool = manager_.rewardPool();
        treasury = manager_.treasury();
        payers = payers_;
        for (uint256 i = 0; i < payers_.length; i++) {
            beneficiaries.push(payers_[i]);
        }
        for (uint256 i = 0; i < others.length; i++) {
            beneficiaries.push(others[i]);
        }
        currentTime = block.timestamp;
    }

    modifier atCurrentTime() {
        vm.warp(currentTime);
        _;
    }

    function beneficiaryCount() external view returns (uint256) {
        return beneficiaries.length;
    }

    function beneficiaryAt(uint256 i) external view returns (address) {
        return beneficiaries[i];
    }

    /// @notice A payer buys `months` periods, for themselves or (`gift`) for a random beneficiary.
    function subscribe(uint256 payerSeed, uint256 beneficiarySeed, uint256 months, bool gift)
        external
        atCurrentTime
    {
        address payer = payers[payerSeed % payers.length];
        address beneficiary = gift ? beneficiaries[beneficiarySeed % beneficiaries.length] : payer;
        uint32 m = uint32(bound(months, 1, 36));

        uint256 price = manager.pricePerPeriod();
        uint256 paid = price * m;
        uint64 old = manager.expiresAt(beneficiary);
        uint64 start = old > block.timestamp ? old : uint64(block.timestamp);
        uint64 expected = start + uint64(m) * PERIOD;
        uint256 payerBefore = token.balanceOf(payer);
        uint256 share = paid * manager.rewardBps() / manager.BPS();

        vm.prank(payer);
        try manager.subscribe(beneficiary, m, price) returns (uint64 newExpiry) {
            uint64 stored = manager.expiresAt(beneficiary);
            if (stored < old || stored < lastExpiry[beneficiary]) expiryWentBackwards = true;
            if (newExpiry != expected || stored != expected) expiryMismatch = true;
            if (token.balanceOf(payer) != payerBefore - paid) payerChargedWrongly = true;
            lastExpiry[beneficiary] = stored;
            ghostPaid += paid;
            ghostAccrued += share;
            if (gift) giftCalls++;
            else subscribeCalls++;
        } catch {
            paymentReverted = true; // payers are funded and approved: a payment must go through
        }
    }

    /// @notice Time passes: up to 90 days, so subscriptions both overlap and lapse.
    function warp(uint256 secondsForward) external {
        currentTime += bound(secondsForward, 0, 90 days);
        vm.warp(currentTime);
        warpCalls++;
    }

    /// @notice Governance occasionally changes the price (one call in four).
    function setPrice(uint256 seed, uint256 newPrice) external atCurrentTime {
        if (seed % 4 != 0) return;
        newPrice = bound(newPrice, 1, 1_000 ether);
        vm.prank(governance);
        manager.setPrice(newPrice);
        priceChanges++;
    }

    /// @notice Governance occasionally changes the revenue split (one call in four).
    function setRevenueSplit(uint256 seed, uint256 newBps) external atCurrentTime {
        if (seed % 4 != 0) return;
        uint16 bps = uint16(bound(newBps, 0, manager.BPS()));
        vm.prank(governance);
        manager.setRevenueSplit(bps);
        splitChanges++;
    }

    /// @notice Anyone occasionally flushes (one call in three).
    function flushRevenue(uint256 seed) external atCurrentTime {
        if (seed % 3 != 0) return;
        uint256 poolBefore = token.balanceOf(rewardPool);
        uint256 treasuryBefore = token.balanceOf(treasury);
        uint256 accruedBefore = manager.accruedRewards();
        uint256 fundedBefore = RewardDistributor(rewardPool).totalFunded();

        (uint256 toPool, uint256 toTreasury) = manager.flushRevenue();

        uint256 poolGot = token.balanceOf(rewardPool) - poolBefore;
        uint256 treasuryGot = token.balanceOf(treasury) - treasuryBefore;
        if (poolGot != toPool || treasuryGot != toTreasury || toPool != accruedBefore) {
            flushMismatch = true;
        }
        if (toPool != ghostAccrued) flushMismatch = true;
        if (RewardDistributor(rewardPool).totalFunded() - fundedBefore != toPool) {
            flushMismatch = true;
        }
        if (manager.accruedRewards() != 0 || token.balanceOf(address(manager)) != 0) {
            flushMismatch = true;
        }
        ghostToRewardPool += poolGot;
        ghostToTreasury += treasuryGot;
        ghostAccrued = 0;
        flushes++;
    }
}

contract SubscriptionInvariantTest is NodusTestBase {
    uint256 internal constant PAYER_FUNDS = 10_000_000 ether;

    SubscriptionHandler internal handler;

    function setUp() public override {
        super.setUp();
        address[] memory payers = new address[](4);
        (payers[0], payers[1], payers[2], payers[3]) = (alice, bob, carol, makeAddr("dave"));
        address[] memory others = new address[](2);
        (others[0], others[1]) = (makeAddr("erin"), makeAddr("frank"));

        for (uint256 i = 0; i < payers.length; i++) {
            vm.prank(address(timelock));
            require(token.transfer(payers[i], PAYER_FUNDS), "fund");
            vm.prank(payers[i]);
            token.approve(address(subscriptions), type(uint256).max);
        }

        handler = new SubscriptionHandler(token, subscriptions, address(timelock), payers, others);
        targetContract(address(handler));
    }

    function invariant_ExpiryNeverMovesBackwards() public view {
        assertFalse(handler.expiryWentBackwards());
        for (uint256 i = 0; i < handler.beneficiaryCount(); i++) {
            address b = handler.beneficiaryAt(i);
            assertGe(subscriptions.expiresAt(b), handler.lastExpiry(b));
        }
    }

    function invariant_ExpiryIsLaterOfNowAndOldPlusMonths() public view {
        assertFalse(handler.expiryMismatch());
    }

    function invariant_PayerChargedExactly() public view {
        assertFalse(handler.payerChargedWrongly());
        assertFalse(handler.paymentReverted());
    }

    function invariant_PaymentsConserved() public view {
        assertEq(
            handler.ghostPaid(),
            token.balanceOf(address(subscriptions)) + handler.ghostToRewardPool()
                + handler.ghostToTreasury()
        );
    }

    function invariant_AccruedRewardsCoveredByBalance() public view {
        assertLe(subscriptions.accruedRewards(), token.balanceOf(address(subscriptions)));
    }

    function invariant_AccruedRewardsIsSumOfShares() public view {
        assertEq(subscriptions.accruedRewards(), handler.ghostAccrued());
    }

    function invariant_FlushSplitsExactly() public view {
        assertFalse(handler.flushMismatch());
    }

    function afterInvariant() public view {
        console2.log("subscribe (self)", handler.subscribeCalls());
        console2.log("subscribe (gift)", handler.giftCalls());
        console2.log("warps", handler.warpCalls());
        console2.log("price changes", handler.priceChanges());
        console2.log("split changes", handler.splitChanges());
        console2.log("flushes", handler.flushes());
    }
}
