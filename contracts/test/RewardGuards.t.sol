// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {IRewardRoots} from "../src/interfaces/IRewardRoots.sol";
import {RewardTestBase} from "./RewardDistributor.t.sol";

/// @notice Issue 8, rewards half: a root can no longer pay more than it declares, a guardian key
/// (beside the timelock) can stop a bad root in time and do nothing else, and the oracle can
/// withdraw its own mistaken root. The guardian and the oracle call as themselves.
contract RewardGuardsTest is RewardTestBase {
    address internal stranger = makeAddr("stranger");

    function _unauthorized(address caller, bytes32 role) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(
            IAccessControl.AccessControlUnauthorizedAccount.selector, caller, role
        );
    }

    // ------------------------------------------------------------------ claims within the total

    /// @notice The finding: a root declaring 1 wei with one leaf worth the whole pool. The leaf
    /// now pays nothing, the pool stays whole, and an honest operator is paid afterwards.
    function test_RevertWhen_RootPaysMoreThanItDeclares() public {
        (, bytes32[][] memory bad) = _tree(_addrs(carol), _uints(POOL));
        _propose(1, _root(_addrs(carol), _uints(POOL)), 1); // declares 1 wei
        _waitAndAccept();

        vm.expectRevert(abi.encodeWithSelector(IRewardRoots.ClaimsExceedTotal.selector, POOL, 1));
        rewards.claim(carol, POOL, bad[0]);
        assertEq(token.balanceOf(address(rewards)), POOL);
        assertEq(rewards.totalClaimed(), 0);

        (, bytes32[][] memory honest) = _publish(_addrs(alice, carol), _uints(1_000 ether, 0));
        assertEq(rewards.claim(alice, 1_000 ether, honest[0]), 1_000 ether);
        assertEq(token.balanceOf(address(rewards)), POOL - 1_000 ether);
    }

    /// @notice The other finding: leaves that sum to the declared total, but one account's leaf
    /// goes down after it claimed: together the two leaves used to pay 200 against 100.
    function test_RevertWhen_DecreasedLeafWouldPayTwice() public {
        (, bytes32[][] memory first) = _publish(_addrs(alice, bob), _uints(100, 0));
        assertEq(rewards.claim(alice, 100, first[0]), 100);

        (, bytes32[][] memory second) = _publish(_addrs(alice, bob), _uints(0, 100)); // total 100
        vm.expectRevert(abi.encodeWithSelector(IRewardRoots.ClaimsExceedTotal.selector, 100, 0));
        rewards.claim(bob, 100, second[1]);
        // The lowered leaf pays nothing either.
        vm.expectRevert(RewardDistributor.NothingToClaim.selector);
        rewards.claim(alice, 0, second[0]);
        assertEq(rewards.totalClaimed(), 100);
        assertEq(rewards.totalCumulative(), 100);
    }

    function test_Claim_UpToExactlyTheDeclaredTotal() public {
        // Leaves sum to 300, the root declares 250: the first 250 wei are paid, not one more.
        (bytes32 root, bytes32[][] memory proofs) = _tree(_addrs(alice, bob), _uints(200, 100));
        _propose(1, root, 250);
        _waitAndAccept();
        assertEq(rewards.claim(alice, 200, proofs[0]), 200);
        vm.expectRevert(abi.encodeWithSelector(IRewardRoots.ClaimsExceedTotal.selector, 100, 50));
        rewards.claim(bob, 100, proofs[1]);
        assertEq(rewards.totalClaimed(), 200);
    }

    function test_Claim_TotalClaimedCountsEveryPayment() public {
        (, bytes32[][] memory p1) = _publish(_five(), _uints(10, 20, 30, 40, 50));
        rewards.claim(alice, 10, p1[0]);
        rewards.claim(operator2, 50, p1[4]);
        (, bytes32[][] memory p2) = _publish(_five(), _uints(15, 20, 30, 40, 90));
        rewards.claim(alice, 15, p2[0]);
        rewards.claim(operator2, 90, p2[4]);
        rewards.claim(carol, 30, p2[2]);
        assertEq(rewards.totalClaimed(), 15 + 90 + 30);
        assertEq(POOL - token.balanceOf(address(rewards)), rewards.totalClaimed());
    }

    /// @notice claim reads and writes totalCumulative and totalClaimed as one slot (low and high
    /// 128 bits): this pins that layout.
    function test_TotalsShareOneSlot() public {
        (, bytes32[][] memory proofs) = _publish(_addrs(alice, bob), _uints(7 ether, 5 ether));
        rewards.claim(bob, 5 ether, proofs[1]);
        bytes32 expected = bytes32((uint256(5 ether) << 128) | 12 ether);
        uint256 found;
        for (uint256 slot = 0; slot < 32; slot++) {
            if (vm.load(address(rewards), bytes32(slot)) == expected) found++;
        }
        assertEq(found, 1);
    }

    // ------------------------------------------------------------------ the guardian key

    function test_Deployment_GuardianKeyAndTimelockAreGuardians() public view {
        bytes32 role = rewards.GUARDIAN_ROLE();
        assertTrue(rewards.hasRole(role, guardian));
        assertTrue(rewards.hasRole(role, address(timelock)));
        assertEq(rewards.getRoleAdmin(role), rewards.DEFAULT_ADMIN_ROLE());
        assertFalse(rewards.hasRole(rewards.DEFAULT_ADMIN_ROLE(), guardian));
        assertFalse(rewards.hasRole(rewards.ORACLE_ROLE(), guardian));
    }

    function test_RevertWhen_ConstructorGuardianZero() public {
        vm.expectRevert(RewardDistributor.ZeroAddress.selector);
        new RewardDistributor(token, address(timelock), oracle, address(0), BUDGET, WINDOW, guard);
    }

    function test_Guardian_RevokesABadRootWithinTheWindow() public {
        bytes32 bad = _root(_addrs(carol), _uints(BUDGET));
        _propose(1, bad, BUDGET);
        vm.warp(block.timestamp + WINDOW - 1); // the last second before anyone may accept

        vm.expectEmit(address(rewards));
        emit RewardDistributor.RootRevoked(1, bad);
        vm.prank(guardian);
        rewards.revokeEpoch(1, bad);

        vm.warp(block.timestamp + 1 days);
        vm.expectRevert(RewardDistributor.NoPendingRoot.selector);
        rewards.acceptRoot();
        assertEq(rewards.currentEpoch(), 1);
        assertEq(rewards.currentRoot(), bytes32(0));
    }

    function test_RevertWhen_GuardianRevokesAnotherRootThanNamed() public {
        _propose(1, bytes32(uint256(5)), 1 ether);
        vm.expectRevert(
            abi.encodeWithSelector(RewardDistributor.NotPending.selector, 1, bytes32(uint256(6)))
        );
        vm.prank(guardian);
        rewards.revokeEpoch(1, bytes32(uint256(6)));
    }

    /// @notice Everything the guardian could try besides revoking reverts, and no token moves.
    function test_RevertWhen_GuardianDoesAnythingButRevoke() public {
        (, bytes32[][] memory proofs) = _publish(_addrs(alice, bob), _uints(100, 200));
        bytes32 admin = rewards.DEFAULT_ADMIN_ROLE();
        bytes32 oracleRole = rewards.ORACLE_ROLE();
        bytes32 guardianRole = rewards.GUARDIAN_ROLE();
        uint256 pool = token.balanceOf(address(rewards));

        vm.startPrank(guardian);
        vm.expectRevert(_unauthorized(guardian, oracleRole));
        rewards.proposeRoot(2, bytes32(uint256(1)), 300, bytes32(0));
        vm.expectRevert(_unauthorized(guardian, oracleRole));
        rewards.withdrawRoot(2, bytes32(uint256(1)));
        vm.expectRevert(_unauthorized(guardian, admin));
        rewards.setEpochBudget(type(uint256).max);
        vm.expectRevert(_unauthorized(guardian, admin));
        rewards.setChallengePeriod(1);
        vm.expectRevert(_unauthorized(guardian, admin));
        rewards.grantRole(oracleRole, guardian);
        vm.expectRevert(_unauthorized(guardian, admin));
        rewards.grantRole(guardianRole, stranger);
        vm.expectRevert(_unauthorized(guardian, admin));
        rewards.revokeRole(guardianRole, address(timelock));
        // A claim by the guardian pays the account named, never the guardian.
        rewards.claim(alice, 100, proofs[0]);
        vm.stopPrank();

        assertEq(token.balanceOf(guardian), 0);
        assertEq(token.balanceOf(address(rewards)), pool - 100);
        assertFalse(rewards.hasRole(oracleRole, guardian));
    }

    // ------------------------------------------------------------------ the oracle withdraws

    function test_WithdrawRoot_OracleWithdrawsItsOwnMistake() public {
        bytes32 mistaken = _root(_addrs(carol), _uints(BUDGET));
        _propose(1, mistaken, BUDGET);

        vm.expectEmit(address(rewards));
        emit IRewardRoots.RootWithdrawn(1, mistaken);
        vm.prank(oracle);
        rewards.withdrawRoot(1, mistaken);

        assertEq(rewards.currentEpoch(), 1);
        assertEq(rewards.pendingRoot().epoch, 0);
        vm.warp(block.timestamp + WINDOW);
        vm.expectRevert(RewardDistributor.NoPendingRoot.selector);
        rewards.acceptRoot();
        // The corrected root comes as the next epoch.
        (bytes32 root,) = _publish(_five(), _uints(1, 2, 3, 4, 5));
        assertEq(rewards.currentRoot(), root);
        assertEq(rewards.rootEpoch(), 2);
    }

    function test_RevertWhen_WithdrawRootByOthers() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        bytes32 role = rewards.ORACLE_ROLE();
        address[3] memory others = [stranger, guardian, address(timelock)];
        for (uint256 i = 0; i < others.length; i++) {
            vm.expectRevert(_unauthorized(others[i], role));
            vm.prank(others[i]);
            rewards.withdrawRoot(1, bytes32(uint256(1)));
        }
        assertEq(rewards.pendingRoot().epoch, 1);
    }

    function test_RevertWhen_WithdrawRootNotPending() public {
        vm.prank(oracle);
        vm.expectRevert(RewardDistributor.NoPendingRoot.selector);
        rewards.withdrawRoot(1, bytes32(uint256(1)));

        _propose(1, bytes32(uint256(1)), 1 ether);
        vm.prank(oracle);
        vm.expectRevert(
            abi.encodeWithSelector(RewardDistributor.NotPending.selector, 1, bytes32(uint256(2)))
        );
        rewards.withdrawRoot(1, bytes32(uint256(2)));
    }

    function test_RevertWhen_WithdrawAcceptedRoot() public {
        (bytes32 root,) = _publish(_addrs(alice), _uints(1 ether));
        vm.prank(oracle);
        vm.expectRevert(RewardDistributor.NoPendingRoot.selector);
        rewards.withdrawRoot(1, root);
        assertEq(rewards.currentRoot(), root);
    }

    function _root(address[] memory accounts, uint256[] memory amounts)
        internal
        pure
        returns (bytes32 root)
    {
        (root,) = _tree(accounts, amounts);
    }
}
