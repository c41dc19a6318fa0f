// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {console2} from "forge-std/console2.sol";
import {Vm} from "forge-std/Vm.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {SubscriptionManager} from "../src/SubscriptionManager.sol";
import {NodusTestBase} from "./NodusTestBase.sol";

/// @notice Shared helpers of the SubscriptionManager tests.
abstract contract SubscriptionManagerTestHelpers is NodusTestBase {
    uint256 internal constant PRICE = 10 ether; // NodusDeployment.localParams
    uint16 internal constant REWARD_BPS = 8_000; // NodusDeployment.localParams
    uint64 internal constant PERIOD = 30 days;

    bytes32 internal constant PERMIT_TYPEHASH = keccak256(
        "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
    );

    /// @dev `payer` approves exactly what `months` cost at the current price, then pays them for
    /// `beneficiary`.
    function _subscribe(address payer, address beneficiary, uint32 months)
        internal
        returns (uint64)
    {
        uint256 cost = subscriptions.pricePerPeriod() * months;
        vm.startPrank(payer);
        token.approve(address(subscriptions), cost);
        uint64 newExpiry = subscriptions.subscribe(beneficiary, months, type(uint256).max);
        vm.stopPrank();
        return newExpiry;
    }

    function _setPrice(uint256 price) internal {
        vm.prank(address(timelock));
        subscriptions.setPrice(price);
    }

    function _setRewardBps(uint16 bps) internal {
        vm.prank(address(timelock));
        subscriptions.setRevenueSplit(bps);
    }

    function _give(address to, uint256 amount) internal {
        vm.prank(alice);
        assertTrue(token.transfer(to, amount));
    }

    /// @dev EIP-2612 digest of the NDS token for `owner_` approving `value` to the manager.
    function _permitDigest(address owner_, uint256 value, uint256 nonce, uint256 deadline)
        internal
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(
            abi.encode(PERMIT_TYPEHASH, owner_, address(subscriptions), value, nonce, deadline)
        );
        return keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash));
    }

    /// @dev The reward pool's share of a payment, rounded down as the manager rounds it.
    function _share(uint256 paid, uint16 bps) internal pure returns (uint256) {
        return paid * bps / 10_000;
    }

    /// @dev Intrinsic calldata cost of a transaction (EIP-2028): 16 gas per nonzero byte, 4 per
    /// zero byte.
    function _calldataGas(bytes memory data) internal pure returns (uint256 gasCost) {
        for (uint256 i = 0; i < data.length; i++) {
            gasCost += data[i] == 0 ? 4 : 16;
        }
    }
}

contract SubscriptionManagerTest is SubscriptionManagerTestHelpers {
    // ------------------------------------------------------------------ deployment / constructor

    function test_Deployment_IsWiredAsProduction() public view {
        assertEq(address(subscriptions.token()), address(token));
        assertEq(subscriptions.rewardPool(), address(rewards));
        assertEq(subscriptions.treasury(), address(timelock));
        assertEq(subscriptions.owner(), address(timelock));
        assertEq(subscriptions.pricePerPeriod(), PRICE);
        assertEq(subscriptions.rewardBps(), REWARD_BPS);
        assertEq(subscriptions.accruedRewards(), 0);
    }

    function test_Constants() public view {
        assertEq(subscriptions.PERIOD(), 30 days);
        assertEq(subscriptions.MAX_MONTHS(), 36);
        assertEq(subscriptions.BPS(), 10_000);
        assertEq(subscriptions.MAX_PRICE(), uint256(type(uint112).max) / 36);
    }

    function test_Constructor_EmitsInitialPriceAndSplit() public {
        vm.expectEmit();
        emit SubscriptionManager.PriceChanged(0, 5 ether);
        vm.expectEmit();
        emit SubscriptionManager.RevenueSplitChanged(0, 1_234);
        new SubscriptionManager(
            token, address(rewards), address(timelock), address(timelock), 5 ether, 1_234
        );
    }

    function test_RevertWhen_ConstructorTokenZero() public {
        vm.expectRevert(SubscriptionManager.ZeroAddress.selector);
        new SubscriptionManager(
            IERC20(address(0)),
            address(rewards),
            address(timelock),
            address(timelock),
            PRICE,
            REWARD_BPS
        );
    }

    function test_RevertWhen_ConstructorRewardPoolZero() public {
        vm.expectRevert(SubscriptionManager.ZeroAddress.selector);
        new SubscriptionManager(
            token, address(0), address(timelock), address(timelock), PRICE, REWARD_BPS
        );
    }

    function test_RevertWhen_ConstructorTreasuryZero() public {
        vm.expectRevert(SubscriptionManager.ZeroAddress.selector);
        new SubscriptionManager(
            token, address(rewards), address(0), address(timelock), PRICE, REWARD_BPS
        );
    }

    function test_RevertWhen_ConstructorOwnerZero() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableInvalidOwner.selector, address(0)));
        new SubscriptionManager(
            token, address(rewards), address(timelock), address(0), PRICE, REWARD_BPS
        );
    }

    function test_RevertWhen_ConstructorPriceZero() public {
        vm.expectRevert(abi.encodeWithSelector(SubscriptionManager.InvalidPrice.selector, 0));
        new SubscriptionManager(
            token, address(rewards), address(timelock), address(timelock), 0, REWARD_BPS
        );
    }

    function test_RevertWhen_ConstructorBpsAboveMax() public {
        vm.expectRevert(abi.encodeWithSelector(SubscriptionManager.InvalidBps.selector, 10_001));
        new SubscriptionManager(
            token, address(rewards), address(timelock), address(timelock), PRICE, 10_001
        );
    }

    // ------------------------------------------------------------------ subscribe: happy paths

    function test_Subscribe_NewSubscriptionExpiresAfterMonthsPeriods() public {
        uint64 expected = uint64(block.timestamp) + 3 * PERIOD;
        uint64 returned = _subscribe(alice, alice, 3);
        assertEq(returned, expected);
        assertEq(subscriptions.expiresAt(alice), expected);
        assertTrue(subscriptions.isActive(alice));
    }

    function test_Subscribe_PullsExactPaymentFromPayer() public {
        uint256 payerBefore = token.balanceOf(alice);
        _subscribe(alice, alice, 4);
        assertEq(token.balanceOf(alice), payerBefore - 4 * PRICE);
        assertEq(token.balanceOf(address(subscriptions)), 4 * PRICE);
        assertEq(token.allowance(alice, address(subscriptions)), 0);
    }

    function test_Subscribe_AccruesRewardShare() public {
        _subscribe(alice, alice, 4);
        assertEq(subscriptions.accruedRewards(), 4 * PRICE * REWARD_BPS / 10_000);
    }

    function test_Subscribe_EmitsSubscribed() public {
        vm.prank(alice);
        token.approve(address(subscriptions), 2 * PRICE);

        vm.expectEmit(true, true, true, true, address(subscriptions));
        emit SubscriptionManager.Subscribed(
            alice, alice, 2, 2 * PRICE, uint64(block.timestamp) + 2 * PERIOD
        );
        vm.prank(alice);
        subscriptions.subscribe(alice, 2, PRICE);
    }

    function test_Subscribe_ExtendsActiveSubscriptionFromOldExpiry() public {
        uint64 first = _subscribe(alice, alice, 1);
        vm.warp(block.timestamp + 10 days); // still active: 20 days left
        uint64 second = _subscribe(alice, alice, 2);
        assertEq(second, first + 2 * PERIOD);
        assertEq(subscriptions.expiresAt(alice), first + 2 * PERIOD);
    }

    function test_Subscribe_LapsedSubscriptionStartsFromNow() public {
        _subscribe(alice, alice, 1);
        vm.warp(block.timestamp + PERIOD + 5 days); // lapsed 5 days ago
        uint64 renewed = _subscribe(alice, alice, 1);
        assertEq(renewed, uint64(block.timestamp) + PERIOD);
    }

    function test_Subscribe_ExactlyAtExpiryStartsFromNow() public {
        uint64 first = _subscribe(alice, alice, 1);
        vm.warp(first);
        uint64 renewed = _subscribe(alice, alice, 1);
        assertEq(renewed, first + PERIOD);
        assertEq(renewed, uint64(block.timestamp) + PERIOD);
    }

    function test_Subscribe_MaxMonths() public {
        uint64 expiry = _subscribe(alice, alice, 36);
        assertEq(expiry, uint64(block.timestamp) + 36 * PERIOD);
        assertEq(token.balanceOf(address(subscriptions)), 36 * PRICE);
    }

    function test_Subscribe_MaxPriceEqualToPriceSucceeds() public {
        vm.startPrank(alice);
        token.approve(address(subscriptions), PRICE);
        subscriptions.subscribe(alice, 1, PRICE);
        vm.stopPrank();
        assertTrue(subscriptions.isActive(alice));
    }

    function test_Subscribe_ChargesNewPriceAfterSetPrice() public {
        _setPrice(3 ether);
        uint256 before = token.balanceOf(alice);
        _subscribe(alice, alice, 2);
        assertEq(token.balanceOf(alice), before - 6 ether);
    }

    // ------------------------------------------------------------------ isActive

    function test_IsActive_FalseWhenNeverSubscribed() public view {
        assertFalse(subscriptions.isActive(alice));
        assertEq(subscriptions.expiresAt(alice), 0);
    }

    function test_IsActive_TrueOneSecondBeforeExpiry() public {
        uint64 expiry = _subscribe(alice, alice, 1);
        vm.warp(expiry - 1);
        assertTrue(subscriptions.isActive(alice));
    }

    function test_IsActive_FalseExactlyAtExpiry() public {
        uint64 expiry = _subscribe(alice, alice, 1);
        vm.warp(expiry);
        assertFalse(subscriptions.isActive(alice));
    }

    // ------------------------------------------------------------------ subscribe for someone else

    function test_SubscribeFor_PayerPaysAndBeneficiaryExpiryMoves() public {
        uint256 aliceBefore = token.balanceOf(alice);
        uint256 bobBefore = token.balanceOf(bob);

        uint64 expiry = _subscribe(alice, bob, 2);

        assertEq(token.balanceOf(alice), aliceBefore - 2 * PRICE);
        assertEq(token.balanceOf(bob), bobBefore);
        assertEq(subscriptions.expiresAt(bob), expiry);
        assertEq(expiry, uint64(block.timestamp) + 2 * PERIOD);
        assertEq(subscriptions.expiresAt(alice), 0);
        assertTrue(subscriptions.isActive(bob));
        assertFalse(subscriptions.isActive(alice));
    }

    function test_SubscribeFor_EmitsBeneficiaryAndPayer() public {
        vm.prank(alice);
        token.approve(address(subscriptions), PRICE);

        vm.expectEmit(true, true, true, true, address(subscriptions));
        emit SubscriptionManager.Subscribed(bob, alice, 1, PRICE, uint64(block.timestamp) + PERIOD);
        vm.prank(alice);
        subscriptions.subscribe(bob, 1, PRICE);
    }

    function test_SubscribeFor_ExtendsBeneficiarysOwnSubscription() public {
        uint64 own = _subscribe(bob, bob, 1);
        vm.warp(block.timestamp + 1 days);
        uint64 gifted = _subscribe(alice, bob, 1);
        assertEq(gifted, own + PERIOD);
    }

    // ------------------------------------------------------------------ subscribe: reverts

    function test_RevertWhen_BeneficiaryZero() public {
        vm.prank(alice);
        token.approve(address(subscriptions), PRICE);
        vm.expectRevert(SubscriptionManager.ZeroAddress.selector);
        vm.prank(alice);
        subscriptions.subscribe(address(0), 1, PRICE);
    }

    function test_RevertWhen_MonthsZero() public {
        vm.expectRevert(abi.encodeWithSelector(SubscriptionManager.InvalidMonths.selector, 0));
        vm.prank(alice);
        subscriptions.subscribe(alice, 0, PRICE);
    }

    function test_RevertWhen_MonthsAboveMax() public {
        vm.prank(alice);
        token.approve(address(subscriptions), 37 * PRICE);
        vm.expectRevert(abi.encodeWithSelector(SubscriptionManager.InvalidMonths.selector, 37));
        vm.prank(alice);
        subscriptions.subscribe(alice, 37, PRICE);
    }

    function test_RevertWhen_PriceAboveMaxPrice() public {
        vm.prank(alice);
        token.approve(address(subscriptions), PRICE);
        vm.expectRevert(
            abi.encodeWithSelector(SubscriptionManager.PriceAboveMax.selector, PRICE, PRICE - 1)
        );
        vm.prank(alice);
        subscriptions.subscribe(alice, 1, PRICE - 1);
    }

    function test_RevertWhen_PriceRaisedWhilePaymentInFlight() public {
        vm.prank(alice);
        token.approve(address(subscriptions), 100 ether);
        _setPrice(11 ether); // lands before alice's transaction
        vm.expectRevert(
            abi.encodeWithSelector(SubscriptionManager.PriceAboveMax.selector, 11 ether, PRICE)
        );
        vm.prank(alice);
        subscriptions.subscribe(alice, 1, PRICE);
    }

    function test_RevertWhen_AllowanceInsufficient() public {
        vm.prank(alice);
        token.approve(address(subscriptions), 2 * PRICE - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector,
                address(subscriptions),
                2 * PRICE - 1,
                2 * PRICE
            )
        );
        vm.prank(alice);
        subscriptions.subscribe(alice, 2, PRICE);
    }

    function test_RevertWhen_BalanceInsufficient() public {
        address poor = makeAddr("poor");
        _give(poor, PRICE - 1);
        vm.prank(poor);
        token.approve(address(subscriptions), PRICE);
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientBalance.selector, poor, PRICE - 1, PRICE
            )
        );
        vm.prank(poor);
        subscriptions.subscribe(poor, 1, PRICE);
    }

    function test_RevertWhen_PaymentFails_NothingChanges() public {
        vm.prank(alice);
        token.approve(address(subscriptions), PRICE - 1);
        vm.prank(alice);
        (bool ok,) = address(subscriptions)
            .call(abi.encodeCall(SubscriptionManager.subscribe, (alice, 1, PRICE)));
        assertFalse(ok);
        assertEq(subscriptions.expiresAt(alice), 0);
        assertEq(subscriptions.accruedRewards(), 0);
    }

    // ------------------------------------------------------------------ subscribeWithPermit

    function test_SubscribeWithPermit_ValidSignature() public {
        Vm.Wallet memory w = vm.createWallet("permitter");
        _give(w.addr, 100 ether);
        uint256 value = 3 * PRICE;
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(w, _permitDigest(w.addr, value, token.nonces(w.addr), deadline));

        vm.prank(w.addr);
        uint64 expiry = subscriptions.subscribeWithPermit(w.addr, 3, PRICE, deadline, v, r, s);

        assertEq(expiry, uint64(block.timestamp) + 3 * PERIOD);
        assertEq(subscriptions.expiresAt(w.addr), expiry);
        assertEq(token.balanceOf(w.addr), 100 ether - value);
        assertEq(token.nonces(w.addr), 1);
        assertEq(token.allowance(w.addr, address(subscriptions)), 0);
    }

    function test_SubscribeWithPermit_ForAnotherBeneficiary() public {
        Vm.Wallet memory w = vm.createWallet("permitter");
        _give(w.addr, 100 ether);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(w, _permitDigest(w.addr, PRICE, 0, deadline));

        vm.prank(w.addr);
        subscriptions.subscribeWithPermit(bob, 1, PRICE, deadline, v, r, s);

        assertEq(subscriptions.expiresAt(bob), uint64(block.timestamp) + PERIOD);
        assertEq(subscriptions.expiresAt(w.addr), 0);
        assertEq(token.balanceOf(w.addr), 100 ether - PRICE);
    }

    function test_SubscribeWithPermit_SucceedsWhenPermitFrontRun() public {
        Vm.Wallet memory w = vm.createWallet("permitter");
        _give(w.addr, 100 ether);
        uint256 value = 2 * PRICE;
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(w, _permitDigest(w.addr, value, 0, deadline));

        // A griefer copies the permit from the mempool and submits it to the token first.
        vm.prank(makeAddr("griefer"));
        token.permit(w.addr, address(subscriptions), value, deadline, v, r, s);
        assertEq(token.nonces(w.addr), 1);

        vm.prank(w.addr);
        uint64 expiry = subscriptions.subscribeWithPermit(w.addr, 2, PRICE, deadline, v, r, s);

        assertEq(expiry, uint64(block.timestamp) + 2 * PERIOD);
        assertEq(token.balanceOf(w.addr), 100 ether - value);
        assertEq(token.nonces(w.addr), 1);
    }

    function test_RevertWhen_PermitInvalidAndNoAllowance() public {
        Vm.Wallet memory w = vm.createWallet("permitter");
        Vm.Wallet memory wrongSigner = vm.createWallet("wrong signer");
        _give(w.addr, 100 ether);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(wrongSigner, _permitDigest(w.addr, PRICE, 0, deadline));

        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(subscriptions), 0, PRICE
            )
        );
        vm.prank(w.addr);
        subscriptions.subscribeWithPermit(w.addr, 1, PRICE, deadline, v, r, s);
    }

    function test_RevertWhen_PermitExpiredAndNoAllowance() public {
        Vm.Wallet memory w = vm.createWallet("permitter");
        _give(w.addr, 100 ether);
        uint256 deadline = block.timestamp - 1;
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(w, _permitDigest(w.addr, PRICE, 0, deadline));

        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(subscriptions), 0, PRICE
            )
        );
        vm.prank(w.addr);
        subscriptions.subscribeWithPermit(w.addr, 1, PRICE, deadline, v, r, s);
    }

    function test_SubscribeWithPermit_InvalidPermitUsesExistingAllowance() public {
        vm.prank(alice);
        token.approve(address(subscriptions), PRICE);
        vm.prank(alice);
        uint64 expiry =
            subscriptions.subscribeWithPermit(alice, 1, PRICE, 0, 27, bytes32(0), bytes32(0));
        assertEq(expiry, uint64(block.timestamp) + PERIOD);
    }

    /// @dev The permit is signed for maxPrice * months (what the subscriber authorised), not for
    /// the price at execution: a price cut landing first does not break it, and the subscriber
    /// pays the new, lower price.
    function test_SubscribeWithPermit_SurvivesPriceCut() public {
        Vm.Wallet memory w = vm.createWallet("permitter");
        _give(w.addr, 100 ether);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(w, _permitDigest(w.addr, PRICE, 0, deadline));

        _setPrice(PRICE - 1 ether); // a price cut lands first

        vm.prank(w.addr);
        subscriptions.subscribeWithPermit(w.addr, 1, PRICE, deadline, v, r, s);

        assertEq(token.balanceOf(w.addr), 100 ether - (PRICE - 1 ether));
        assertEq(token.allowance(w.addr, address(subscriptions)), 1 ether);
    }

    function test_RevertWhen_PermitMonthsZero() public {
        Vm.Wallet memory w = vm.createWallet("permitter");
        _give(w.addr, 100 ether);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(w, _permitDigest(w.addr, 0, 0, deadline));

        vm.expectRevert(abi.encodeWithSelector(SubscriptionManager.InvalidMonths.selector, 0));
        vm.prank(w.addr);
        subscriptions.subscribeWithPermit(w.addr, 0, PRICE, deadline, v, r, s);
    }

    // ------------------------------------------------------------------ setPrice

    function test_SetPrice_UpdatesPrice() public {
        _setPrice(42 ether);
        assertEq(subscriptions.pricePerPeriod(), 42 ether);
    }

    function test_SetPrice_EmitsPriceChanged() public {
        vm.expectEmit(address(subscriptions));
        emit SubscriptionManager.PriceChanged(PRICE, 42 ether);
        _setPrice(42 ether);
    }

    function test_SetPrice_AcceptsMaxPrice() public {
        uint256 maxPrice = subscriptions.MAX_PRICE();
        _setPrice(maxPrice);
        assertEq(subscriptions.pricePerPeriod(), maxPrice);
    }

    function test_SetPrice_AcceptsOneWei() public {
        _setPrice(1);
        assertEq(subscriptions.pricePerPeriod(), 1);
    }

    function test_RevertWhen_SetPriceNotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        vm.prank(alice);
        subscriptions.setPrice(1 ether);
    }

    function test_RevertWhen_SetPriceZero() public {
        vm.expectRevert(abi.encodeWithSelector(SubscriptionManager.InvalidPrice.selector, 0));
        vm.prank(address(timelock));
        subscriptions.setPrice(0);
    }

    function test_RevertWhen_SetPriceAboveMax() public {
        uint256 tooHigh = subscriptions.MAX_PRICE() + 1;
        vm.expectRevert(abi.encodeWithSelector(SubscriptionManager.InvalidPrice.selector, tooHigh));
        vm.prank(address(timelock));
        subscriptions.setPrice(tooHigh);
    }

    // ------------------------------------------------------------------ setRevenueSplit

    function test_SetRevenueSplit_UpdatesBps() public {
        _setRewardBps(2_500);
        assertEq(subscriptions.rewardBps(), 2_500);
    }

    function test_SetRevenueSplit_EmitsRevenueSplitChanged() public {
        vm.expectEmit(address(subscriptions));
        emit SubscriptionManager.RevenueSplitChanged(REWARD_BPS, 2_500);
        _setRewardBps(2_500);
    }

    function test_SetRevenueSplit_AcceptsBounds() public {
        _setRewardBps(0);
        assertEq(subscriptions.rewardBps(), 0);
        _setRewardBps(10_000);
        assertEq(subscriptions.rewardBps(), 10_000);
    }

    function test_RevertWhen_SetRevenueSplitNotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, alice));
        vm.prank(alice);
        subscriptions.setRevenueSplit(1);
    }

    function test_RevertWhen_SetRevenueSplitAboveBps() public {
        vm.expectRevert(abi.encodeWithSelector(SubscriptionManager.InvalidBps.selector, 10_001));
        vm.prank(address(timelock));
        subscriptions.setRevenueSplit(10_001);
    }

    // ------------------------------------------------------------------ flushRevenue

    function test_FlushRevenue_SplitsAtEachPaymentsBps() public {
        uint256 expectedRewards;
        uint256 total;

        // 1) 8000 bps, 3 months at 10 NDS.
        _subscribe(alice, alice, 3);
        expectedRewards += _share(30 ether, 8_000);
        total += 30 ether;

        // 2) 3333 bps at an odd price, so the share rounds down.
        _setRewardBps(3_333);
        _setPrice(7 ether + 7);
        _subscribe(bob, carol, 5);
        expectedRewards += _share(35 ether + 35, 3_333);
        total += 35 ether + 35;

        // 3) everything to the pool.
        _setRewardBps(10_000);
        _subscribe(carol, carol, 1);
        expectedRewards += 7 ether + 7;
        total += 7 ether + 7;

        // 4) nothing to the pool; a 1-wei payment.
        _setRewardBps(0);
        _setPrice(1);
        _subscribe(alice, bob, 1);
        total += 1;

        assertEq(subscriptions.accruedRewards(), expectedRewards);
        uint256 poolBefore = token.balanceOf(address(rewards));
        uint256 treasuryBefore = token.balanceOf(address(timelock));
        uint256 fundedBefore = rewards.totalFunded();

        (uint256 toPool, uint256 toTreasury) = subscriptions.flushRevenue();

        assertEq(toPool, expectedRewards);
        assertEq(toTreasury, total - expectedRewards);
        assertEq(token.balanceOf(address(rewards)) - poolBefore, expectedRewards);
        assertEq(token.balanceOf(address(timelock)) - treasuryBefore, total - expectedRewards);
        assertEq(rewards.totalFunded() - fundedBefore, expectedRewards); // counted as funding
        assertEq(token.balanceOf(address(subscriptions)), 0);
        assertEq(subscriptions.accruedRewards(), 0);
    }

    function test_FlushRevenue_SecondFlushMovesNothing() public {
        _subscribe(alice, alice, 2);
        subscriptions.flushRevenue();
        uint256 poolBefore = token.balanceOf(address(rewards));
        uint256 treasuryBefore = token.balanceOf(address(timelock));

        (uint256 toPool, uint256 toTreasury) = subscriptions.flushRevenue();

        assertEq(toPool, 0);
        assertEq(toTreasury, 0);
        assertEq(token.balanceOf(address(rewards)), poolBefore);
        assertEq(token.balanceOf(address(timelock)), treasuryBefore);
    }

    function test_FlushRevenue_EmitsRevenueFlushed() public {
        _subscribe(alice, alice, 2);
        vm.expectEmit(address(subscriptions));
        emit SubscriptionManager.RevenueFlushed(16 ether, 4 ether);
        subscriptions.flushRevenue();
    }

    function test_FlushRevenue_EmptyEmitsZeros() public {
        vm.expectEmit(address(subscriptions));
        emit SubscriptionManager.RevenueFlushed(0, 0);
        subscriptions.flushRevenue();
    }

    function test_FlushRevenue_CallableByAnyone() public {
        _subscribe(alice, alice, 1);
        vm.prank(makeAddr("keeper"));
        (uint256 toPool, uint256 toTreasury) = subscriptions.flushRevenue();
        assertEq(toPool, 8 ether);
        assertEq(toTreasury, 2 ether);
    }

    function test_FlushRevenue_LeavesNoAllowanceToRewardPool() public {
        _subscribe(alice, alice, 3);
        subscriptions.flushRevenue();
        assertEq(token.allowance(address(subscriptions), address(rewards)), 0);
    }

    function test_FlushRevenue_StrayTokensGoToTreasury() public {
        _subscribe(alice, alice, 1);
        _give(address(subscriptions), 5 ether); // sent directly, not a payment
        (uint256 toPool, uint256 toTreasury) = subscriptions.flushRevenue();
        assertEq(toPool, 8 ether);
        assertEq(toTreasury, 2 ether + 5 ether);
    }

    function test_FlushRevenue_AccrualContinuesAfterFlush() public {
        _subscribe(alice, alice, 1);
        subscriptions.flushRevenue();
        _subscribe(bob, bob, 1);
        assertEq(subscriptions.accruedRewards(), 8 ether);
        (uint256 toPool, uint256 toTreasury) = subscriptions.flushRevenue();
        assertEq(toPool, 8 ether);
        assertEq(toTreasury, 2 ether);
    }

    // ------------------------------------------------------------------ fuzz

    function testFuzz_Subscribe_ChargesExactlyAndSetsExactExpiry(
        uint32 months,
        uint256 price,
        address beneficiary,
        uint64 jump
    ) public {
        months = uint32(bound(months, 1, 36));
        // Any price a holder could pay: 36 periods cost at most the whole supply.
        price = bound(price, 1, token.totalSupply() / 36);
        vm.assume(beneficiary != address(0));
        vm.warp(block.timestamp + bound(jump, 0, 3650 days));
        _setPrice(price);

        address payer = makeAddr("fuzz payer");
        uint256 cost = price * months;
        deal(address(token), payer, cost + 1); // one wei left over proves the exact amount
        uint64 expected = uint64(block.timestamp) + uint64(months) * PERIOD;

        vm.startPrank(payer);
        token.approve(address(subscriptions), cost);
        uint64 expiry = subscriptions.subscribe(beneficiary, months, price);
        vm.stopPrank();

        assertEq(token.balanceOf(payer), 1);
        assertEq(expiry, expected);
        assertEq(subscriptions.expiresAt(beneficiary), expected);
        assertEq(subscriptions.accruedRewards(), cost * REWARD_BPS / 10_000);
    }

    function testFuzz_Subscribe_ExtendsFromLaterOfNowAndExpiry(
        uint32 months1,
        uint32 months2,
        uint64 gap
    ) public {
        months1 = uint32(bound(months1, 1, 36));
        months2 = uint32(bound(months2, 1, 36));
        uint256 wait = bound(gap, 0, 40 * uint256(PERIOD));

        uint64 first = _subscribe(alice, bob, months1);
        vm.warp(block.timestamp + wait);
        uint64 start = first > block.timestamp ? first : uint64(block.timestamp);

        uint64 second = _subscribe(carol, bob, months2);

        assertEq(second, start + uint64(months2) * PERIOD);
        assertGe(second, first);
        assertEq(subscriptions.isActive(bob), true);
    }

    function testFuzz_FlushRevenue_SplitExact(
        uint16 bps1,
        uint16 bps2,
        uint256 price,
        uint32 months
    ) public {
        bps1 = uint16(bound(bps1, 0, 10_000));
        bps2 = uint16(bound(bps2, 0, 10_000));
        price = bound(price, 1, 1_000 ether);
        months = uint32(bound(months, 1, 36));
        _setPrice(price);

        _setRewardBps(bps1);
        _subscribe(alice, alice, months);
        _setRewardBps(bps2);
        _subscribe(bob, bob, months);

        uint256 paid = price * months;
        uint256 expectedPool = paid * bps1 / 10_000 + paid * bps2 / 10_000;
        uint256 poolBefore = token.balanceOf(address(rewards));
        uint256 treasuryBefore = token.balanceOf(address(timelock));

        subscriptions.flushRevenue();

        assertEq(token.balanceOf(address(rewards)) - poolBefore, expectedPool);
        assertEq(token.balanceOf(address(timelock)) - treasuryBefore, 2 * paid - expectedPool);
        assertEq(token.balanceOf(address(subscriptions)), 0);
    }

    function testFuzz_RevertWhen_MonthsOutOfRange(uint32 months) public {
        vm.assume(months == 0 || months > 36);
        vm.expectRevert(abi.encodeWithSelector(SubscriptionManager.InvalidMonths.selector, months));
        vm.prank(alice);
        subscriptions.subscribe(alice, months, PRICE);
    }

    function testFuzz_RevertWhen_SetPriceOutOfRange(uint256 price) public {
        vm.assume(price == 0 || price > subscriptions.MAX_PRICE());
        vm.expectRevert(abi.encodeWithSelector(SubscriptionManager.InvalidPrice.selector, price));
        vm.prank(address(timelock));
        subscriptions.setPrice(price);
    }

    function testFuzz_RevertWhen_SetRevenueSplitAboveBps(uint16 bps) public {
        bps = uint16(bound(bps, 10_001, type(uint16).max));
        vm.expectRevert(abi.encodeWithSelector(SubscriptionManager.InvalidBps.selector, bps));
        vm.prank(address(timelock));
        subscriptions.setRevenueSplit(bps);
    }
}

/// @notice Gas of a renewal as a real transaction would pay it. The first payment happens in
/// setUp, which forge runs as its own transaction, so every slot and account the measured call
/// touches starts cold with its original (post-setUp) value, as in a fresh transaction. (vm.cool
/// would reset warmth but not the original values EIP-2200 prices writes by, so the earlier
/// payment must not run in the measured transaction.)
abstract contract SubscriptionGasBase is SubscriptionManagerTestHelpers {
    uint256 internal constant TX_BASE_GAS = 21_000;

    /// @dev alice's expiry after her first payment (kept here so the measured transaction need
    /// not read, and so warm, the manager's slot before the call).
    uint64 internal firstExpiry;

    function setUp() public virtual override {
        super.setUp();
        // alice subscribed once before, with an allowance that outlives the renewal (so the
        // allowance write is nonzero to nonzero, the common case of a standing approval).
        vm.startPrank(alice);
        token.approve(address(subscriptions), 12 * PRICE);
        firstExpiry = subscriptions.subscribe(alice, 1, PRICE);
        vm.stopPrank();
        vm.warp(block.timestamp + 20 days); // still active: the renewal extends it
    }

    /// @dev Gas a transaction calling `subscribe(alice, 1, PRICE)` from alice would use: 21,000,
    /// the calldata, and the execution measured with gasleft() around the call. Only the
    /// manager's account is touched first, so it is warm as the target of a real transaction is;
    /// the token and every storage slot stay cold. The measurement includes the few hundred gas
    /// of the test's own CALL and ABI encoding, and no refunds: it errs high.
    function _measureRenewal() internal returns (uint256 execution, uint256 txGas) {
        bytes memory data = abi.encodeCall(SubscriptionManager.subscribe, (alice, 1, PRICE));
        assertEq(subscriptions.PERIOD(), PERIOD); // warms the manager's account, no storage

        vm.prank(alice);
        uint256 before = gasleft();
        uint64 newExpiry = subscriptions.subscribe(alice, 1, PRICE);
        execution = before - gasleft();

        assertEq(newExpiry, firstExpiry + PERIOD); // an extension of the active subscription
        txGas = TX_BASE_GAS + _calldataGas(data) + execution;
        console2.log("calldata gas", _calldataGas(data));
        console2.log("execution gas (gasleft)", execution);
        console2.log("receipt-equivalent gas", txGas);
    }
}

contract SubscriptionManagerGasTest is SubscriptionGasBase {
    uint256 internal constant RENEWAL_GAS_LIMIT = 65_000;

    function test_CalldataGasHelper() public pure {
        assertEq(_calldataGas(hex"00ff0001"), 4 + 16 + 4 + 16);
        assertEq(_calldataGas(""), 0);
        // subscribe(alice, 1, 10 NDS): 4 + 96 bytes.
        assertEq(abi.encodeCall(SubscriptionManager.subscribe, (address(1), 1, PRICE)).length, 100);
    }

    function test_Gas_RenewExistingSubscriptionUnder65k() public {
        (, uint256 txGas) = _measureRenewal();
        assertLe(txGas, RENEWAL_GAS_LIMIT);
        assertEq(token.delegates(alice), address(0)); // the payer had not delegated
    }
}

/// @notice Informational: flushRevenue empties the manager's token balance, so the first payment
/// after each flush writes a zero balance slot in the token (17,100 gas more than a renewal
/// between flushes; accruedRewards shares a slot with the price, which never empties).
contract SubscriptionManagerGasAfterFlushTest is SubscriptionGasBase {
    function setUp() public override {
        super.setUp();
        subscriptions.flushRevenue();
    }

    function test_Gas_FirstRenewalAfterFlush() public {
        (, uint256 txGas) = _measureRenewal();
        assertGt(txGas, 65_000);
        assertLe(txGas, 110_000);
    }
}

/// @notice Informational: a payer who delegated their votes pays for a new ERC20Votes checkpoint.
contract SubscriptionManagerGasDelegatedTest is SubscriptionGasBase {
    function setUp() public override {
        super.setUp();
        vm.prank(alice);
        token.delegate(alice);
    }

    function test_Gas_RenewByDelegatedPayer() public {
        (, uint256 txGas) = _measureRenewal();
        assertGt(txGas, 65_000);
        assertLe(txGas, 110_000);
    }
}
