// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {console} from "forge-std/console.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {ITimingGuard} from "../src/interfaces/ITimingGuard.sol";
import {NodusTestBase} from "./NodusTestBase.sol";

/// @notice Builds the tree that OpenZeppelin's
/// `StandardMerkleTree.of(values, ["address", "uint256"])` builds (npm package
/// openzeppelin/merkle-tree 1.x), for any number of leaves: leaves are double-hashed and sorted
/// ascending, laid out from the end of a `2n - 1` array, and every internal node is the
/// sorted-pair hash of its two children. Proofs come back in input order.
library StandardMerkle {
    /// @notice The leaf of `(account, amount)`, as RewardDistributor computes it.
    function leaf(address account, uint256 amount) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, amount))));
    }

    /// @notice The root of the tree of `(accounts[i], amounts[i])`, and each pair's proof.
    function build(address[] memory accounts, uint256[] memory amounts)
        internal
        pure
        returns (bytes32 root, bytes32[][] memory proofs)
    {
        uint256 n = accounts.length;
        require(n > 0 && amounts.length == n, "StandardMerkle: bad input");

        bytes32[] memory hashes = new bytes32[](n);
        uint256[] memory order = new uint256[](n); // value indices, by ascending leaf hash
        for (uint256 i = 0; i < n; i++) {
            hashes[i] = leaf(accounts[i], amounts[i]);
            order[i] = i;
        }
        // Stable insertion sort, like the JavaScript library's Array.prototype.sort.
        for (uint256 i = 1; i < n; i++) {
            uint256 current = order[i];
            uint256 j = i;
            while (j > 0 && hashes[order[j - 1]] > hashes[current]) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = current;
        }

        bytes32[] memory tree = new bytes32[](2 * n - 1);
        uint256[] memory treeIndex = new uint256[](n);
        for (uint256 k = 0; k < n; k++) {
            uint256 position = tree.length - 1 - k;
            tree[position] = hashes[order[k]];
            treeIndex[order[k]] = position;
        }
        for (uint256 i = n - 1; i > 0; i--) {
            uint256 node = i - 1;
            tree[node] = Hashes.commutativeKeccak256(tree[2 * node + 1], tree[2 * node + 2]);
        }
        root = tree[0];

        proofs = new bytes32[][](n);
        for (uint256 v = 0; v < n; v++) {
            uint256 depth = 0;
            for (uint256 j = treeIndex[v]; j > 0; j = (j - 1) / 2) {
                depth++;
            }
            bytes32[] memory proof = new bytes32[](depth);
            uint256 index = treeIndex[v];
            for (uint256 d = 0; d < depth; d++) {
                proof[d] = tree[index % 2 == 1 ? index + 1 : index - 1];
                index = (index - 1) / 2;
            }
            proofs[v] = proof;
        }
    }
}

/// @notice Shared helpers of the RewardDistributor, Merkle-compatibility, invariant and
/// governance tests: array literals, tree building, proposing and accepting epochs, gas.
abstract contract RewardTestBase is NodusTestBase {
    uint256 internal constant BUDGET = 10_000 ether;
    uint256 internal constant POOL = 1_000_000 ether;
    uint64 internal constant WINDOW = 120; // NodusDeployment.localParams' challenge window
    uint64 internal constant UNBONDING_LOCAL = 1 hours; // NodusDeployment.localParams
    /// @notice The intrinsic gas of a transaction.
    uint256 internal constant TX_BASE_GAS = 21_000;

    // ---- array literals (1 to 5 elements) ----

    function _addrs(address a) internal pure returns (address[] memory r) {
        r = new address[](1);
        r[0] = a;
    }

    function _addrs(address a, address b) internal pure returns (address[] memory r) {
        r = new address[](2);
        (r[0], r[1]) = (a, b);
    }

    function _addrs(address a, address b, address c) internal pure returns (address[] memory r) {
        r = new address[](3);
        (r[0], r[1], r[2]) = (a, b, c);
    }

    function _addrs(address a, address b, address c, address d)
        internal
        pure
        returns (address[] memory r)
    {
        r = new address[](4);
        (r[0], r[1], r[2], r[3]) = (a, b, c, d);
    }

    function _addrs(address a, address b, address c, address d, address e)
        internal
        pure
        returns (address[] memory r)
    {
        r = new address[](5);
        (r[0], r[1], r[2], r[3], r[4]) = (a, b, c, d, e);
    }

    function _uints(uint256 a) internal pure returns (uint256[] memory r) {
        r = new uint256[](1);
        r[0] = a;
    }

    function _uints(uint256 a, uint256 b) internal pure returns (uint256[] memory r) {
        r = new uint256[](2);
        (r[0], r[1]) = (a, b);
    }

    function _uints(uint256 a, uint256 b, uint256 c) internal pure returns (uint256[] memory r) {
        r = new uint256[](3);
        (r[0], r[1], r[2]) = (a, b, c);
    }

    function _uints(uint256 a, uint256 b, uint256 c, uint256 d)
        internal
        pure
        returns (uint256[] memory r)
    {
        r = new uint256[](4);
        (r[0], r[1], r[2], r[3]) = (a, b, c, d);
    }

    function _uints(uint256 a, uint256 b, uint256 c, uint256 d, uint256 e)
        internal
        pure
        returns (uint256[] memory r)
    {
        r = new uint256[](5);
        (r[0], r[1], r[2], r[3], r[4]) = (a, b, c, d, e);
    }

    /// @notice The five funded test accounts, in a fixed order.
    function _five() internal view returns (address[] memory) {
        return _addrs(alice, bob, carol, operator1, operator2);
    }

    function _sum(uint256[] memory values) internal pure returns (uint256 total) {
        for (uint256 i = 0; i < values.length; i++) {
            total += values[i];
        }
    }

    function _tree(address[] memory accounts, uint256[] memory amounts)
        internal
        pure
        returns (bytes32 root, bytes32[][] memory proofs)
    {
        return StandardMerkle.build(accounts, amounts);
    }

    /// @notice A stand-in for keccak256 of the epoch's published data.
    function _dataHash(uint64 epoch) internal pure returns (bytes32) {
        return keccak256(abi.encode("nodus-epoch", epoch));
    }

    // ---- epochs ----

    function _propose(uint64 epoch, bytes32 root, uint256 total) internal {
        vm.prank(oracle);
        rewards.proposeRoot(epoch, root, total, _dataHash(epoch));
    }

    function _waitAndAccept() internal {
        vm.warp(rewards.pendingRoot().validAt);
        rewards.acceptRoot();
    }

    /// @notice Builds the tree of the next epoch, proposes it as the oracle and accepts it.
    function _publish(address[] memory accounts, uint256[] memory amounts)
        internal
        returns (bytes32 root, bytes32[][] memory proofs)
    {
        (root, proofs) = _tree(accounts, amounts);
        _propose(rewards.currentEpoch() + 1, root, _sum(amounts));
        _waitAndAccept();
    }

    function _setBudget(uint256 budget) internal {
        vm.prank(address(timelock));
        rewards.setEpochBudget(budget);
    }

    // ---- gas ----

    /// @notice Intrinsic calldata cost (EIP-2028): 16 per nonzero byte, 4 per zero byte.
    function _calldataCost(bytes memory data) internal pure returns (uint256 cost) {
        for (uint256 i = 0; i < data.length; i++) {
            cost += data[i] == 0 ? 4 : 16;
        }
    }

    /// @notice What the receipt of a transaction from `from` calling `target` with `data` would
    /// show: 21,000 + the calldata cost + the execution gas.
    /// @dev Cold measurement: callers prepare state in setUp (forge commits it, so the test
    /// function runs as a fresh transaction: every slot is cold and every SSTORE's "original
    /// value" is the committed one), do not touch either contract before measuring, and both
    /// are vm.cool'ed again here. Only `target` is warmed (EXTCODESIZE), as a transaction's `to`
    /// is. gasleft() around the call measures the callee plus the CALL's own overhead in this
    /// frame (~400 gas: the warm access, argument memory, the gasleft/call opcodes), which a
    /// real transaction does not pay; vm.lastCallGas() gives the callee frame alone, which is
    /// exactly a transaction's execution gas. The receipt figure uses the callee frame and
    /// checks that the gasleft() figure exceeds it by less than 1,000. Validated against anvil
    /// (cancun) receipts: proposeRoot and a relayed first claim match to the gas. Neither
    /// measured function earns an SSTORE refund, so none is subtracted.
    function _receiptGas(address from, address target, bytes memory data)
        internal
        returns (uint256 receipt, uint256 execution)
    {
        vm.cool(target);
        vm.cool(address(token));
        require(target.code.length > 0, "no code"); // warms `target` like a transaction's `to`
        vm.prank(from);
        uint256 before = gasleft();
        (bool ok,) = target.call(data);
        uint256 measured = before - gasleft();
        require(ok, "measured call reverted");
        execution = vm.lastCallGas().gasTotalUsed;
        assertGe(measured, execution, "gasleft() below the callee frame");
        assertLt(measured - execution, 1_000, "CALL overhead out of range");
        receipt = TX_BASE_GAS + _calldataCost(data) + execution;
        console.log("  execution gas, gasleft() around the call:", measured);
        console.log("  execution gas, callee frame (lastCallGas):", execution);
        console.log("  calldata bytes / cost:", data.length, _calldataCost(data));
        console.log("  receipt gas:", receipt);
    }
}

/// @notice Unit tests of every RewardDistributor function, revert path and event.
contract RewardDistributorTest is RewardTestBase {
    address internal stranger = makeAddr("stranger");

    // Epoch 1 and epoch 2 cumulative allocations of _five(): alice, bob, carol, op1, op2.
    function _epoch1() internal pure returns (uint256[] memory) {
        return _uints(1_000 ether, 2_000 ether, 500 ether, 3_000 ether, 1_500 ether); // 8,000
    }

    function _epoch2() internal pure returns (uint256[] memory) {
        return _uints(1_500 ether, 2_500 ether, 500 ether, 5_000 ether, 4_000 ether); // 13,500
    }

    // ------------------------------------------------------------------ deployment / constructor

    function test_Deployment_GrantsRolesToTimelockAndOracle() public view {
        assertTrue(rewards.hasRole(rewards.DEFAULT_ADMIN_ROLE(), address(timelock)));
        assertTrue(rewards.hasRole(rewards.GUARDIAN_ROLE(), address(timelock)));
        assertTrue(rewards.hasRole(rewards.ORACLE_ROLE(), oracle));
        assertFalse(rewards.hasRole(rewards.DEFAULT_ADMIN_ROLE(), address(this)));
        assertFalse(rewards.hasRole(rewards.GUARDIAN_ROLE(), oracle));
        assertFalse(rewards.hasRole(rewards.ORACLE_ROLE(), address(timelock)));
    }

    function test_Deployment_SetsParamsAndFundsPool() public view {
        assertEq(address(rewards.token()), address(token));
        assertEq(rewards.epochBudget(), BUDGET);
        assertEq(rewards.challengePeriod(), WINDOW);
        assertEq(token.balanceOf(address(rewards)), POOL);
        assertEq(rewards.currentEpoch(), 0);
        assertEq(rewards.rootEpoch(), 0);
        assertEq(rewards.currentRoot(), bytes32(0));
        assertEq(rewards.totalCumulative(), 0);
        assertEq(rewards.totalFunded(), POOL);
    }

    function test_Constructor_EmitsInitialParams() public {
        vm.expectEmit();
        emit RewardDistributor.EpochBudgetChanged(0, 7 ether);
        vm.expectEmit();
        emit RewardDistributor.ChallengePeriodChanged(0, 3 hours);
        new RewardDistributor(token, address(timelock), oracle, guardian, 7 ether, 3 hours, guard);
    }

    function test_RevertWhen_ConstructorTokenZero() public {
        vm.expectRevert(RewardDistributor.ZeroAddress.selector);
        new RewardDistributor(
            IERC20(address(0)), address(timelock), oracle, guardian, BUDGET, WINDOW, guard
        );
    }

    function test_RevertWhen_ConstructorGovernanceZero() public {
        vm.expectRevert(RewardDistributor.ZeroAddress.selector);
        new RewardDistributor(token, address(0), oracle, guardian, BUDGET, WINDOW, guard);
    }

    function test_RevertWhen_ConstructorOracleZero() public {
        vm.expectRevert(RewardDistributor.ZeroAddress.selector);
        new RewardDistributor(token, address(timelock), address(0), guardian, BUDGET, WINDOW, guard);
    }

    function test_RevertWhen_ConstructorChallengePeriodOutOfBounds() public {
        vm.expectRevert(
            abi.encodeWithSelector(RewardDistributor.InvalidChallengePeriod.selector, 0)
        );
        new RewardDistributor(token, address(timelock), oracle, guardian, BUDGET, 0, guard);
    }

    // ------------------------------------------------------------------ proposeRoot

    function test_ProposeRoot_StoresPendingRoot() public {
        (bytes32 root,) = _tree(_five(), _epoch1());
        _propose(1, root, 8_000 ether);

        RewardDistributor.PendingRoot memory p = rewards.pendingRoot();
        assertEq(p.root, root);
        assertEq(p.dataHash, _dataHash(1));
        assertEq(p.totalCumulative, 8_000 ether);
        assertEq(p.epoch, 1);
        assertEq(p.validAt, block.timestamp + WINDOW);
    }

    function test_ProposeRoot_LeavesCurrentStateUntouched() public {
        (bytes32 root,) = _tree(_five(), _epoch1());
        _propose(1, root, 8_000 ether);

        assertEq(rewards.currentRoot(), bytes32(0));
        assertEq(rewards.currentEpoch(), 0);
        assertEq(rewards.totalCumulative(), 0);
    }

    function test_ProposeRoot_EmitsRootProposed() public {
        (bytes32 root,) = _tree(_five(), _epoch1());
        vm.expectEmit(address(rewards));
        emit RewardDistributor.RootProposed(
            1, root, 8_000 ether, _dataHash(1), uint64(block.timestamp) + WINDOW
        );
        _propose(1, root, 8_000 ether);
    }

    function test_RevertWhen_ProposeRootCallerNotOracle() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector,
                stranger,
                rewards.ORACLE_ROLE()
            )
        );
        vm.prank(stranger);
        rewards.proposeRoot(1, bytes32(uint256(1)), 1 ether, bytes32(0));
    }

    function test_RevertWhen_ProposeRootCallerIsGuardian() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector,
                address(timelock),
                rewards.ORACLE_ROLE()
            )
        );
        vm.prank(address(timelock));
        rewards.proposeRoot(1, bytes32(uint256(1)), 1 ether, bytes32(0));
    }

    function test_RevertWhen_EpochSkipped() public {
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.WrongEpoch.selector, 2, 1));
        _propose(2, bytes32(uint256(1)), 1 ether);
    }

    function test_RevertWhen_EpochZero() public {
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.WrongEpoch.selector, 0, 1));
        _propose(0, bytes32(uint256(1)), 1 ether);
    }

    function test_RevertWhen_EpochReplayedAfterAcceptance() public {
        _publish(_five(), _epoch1());
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.WrongEpoch.selector, 1, 2));
        _propose(1, bytes32(uint256(1)), 8_000 ether);
    }

    function test_RevertWhen_PendingRootExists() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.PendingRootExists.selector, 1));
        _propose(1, bytes32(uint256(2)), 2 ether);
    }

    function test_RevertWhen_PendingRootExistsAfterWindow() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        vm.warp(block.timestamp + WINDOW + 1 days); // nobody accepted it yet
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.PendingRootExists.selector, 1));
        _propose(1, bytes32(uint256(2)), 2 ether);
    }

    function test_RevertWhen_CumulativeDecreased() public {
        _publish(_five(), _epoch1());
        vm.expectRevert(
            abi.encodeWithSelector(
                RewardDistributor.CumulativeDecreased.selector, 7_999 ether, 8_000 ether
            )
        );
        _propose(2, bytes32(uint256(1)), 7_999 ether);
    }

    function test_ProposeRoot_AllowsUnchangedCumulative() public {
        _publish(_five(), _epoch1());
        _propose(2, bytes32(uint256(1)), 8_000 ether); // an epoch without new rewards
        assertEq(rewards.pendingRoot().epoch, 2);
    }

    function test_ProposeRoot_AllowsExactlyTheBudget() public {
        _propose(1, bytes32(uint256(1)), BUDGET);
        assertEq(rewards.pendingRoot().totalCumulative, BUDGET);
    }

    function test_RevertWhen_BudgetExceeded() public {
        vm.expectRevert(
            abi.encodeWithSelector(RewardDistributor.BudgetExceeded.selector, BUDGET + 1, BUDGET)
        );
        _propose(1, bytes32(uint256(1)), BUDGET + 1);
    }

    function test_RevertWhen_BudgetExceededOverCurrentTotal() public {
        _publish(_five(), _epoch1()); // 8,000
        vm.expectRevert(
            abi.encodeWithSelector(RewardDistributor.BudgetExceeded.selector, BUDGET + 1, BUDGET)
        );
        _propose(2, bytes32(uint256(1)), 8_000 ether + BUDGET + 1);
    }

    function test_RevertWhen_Underfunded() public {
        _setBudget(2 * POOL);
        vm.expectRevert(
            abi.encodeWithSelector(RewardDistributor.Underfunded.selector, POOL + 1, POOL)
        );
        _propose(1, bytes32(uint256(1)), POOL + 1);
    }

    function test_ProposeRoot_AllowsTheWholePool() public {
        _setBudget(2 * POOL);
        _propose(1, bytes32(uint256(1)), POOL);
        assertEq(rewards.pendingRoot().totalCumulative, POOL);
    }

    function test_RevertWhen_UnderfundedAfterPoolPaidOut() public {
        // Once alice has taken the whole pool, one more wei of cumulative total has nothing
        // behind it.
        _setBudget(2 * POOL);
        (, bytes32[][] memory proofs) = _publish(_addrs(alice), _uints(POOL));
        rewards.claim(alice, POOL, proofs[0]);
        assertEq(token.balanceOf(address(rewards)), 0);

        vm.expectRevert(
            abi.encodeWithSelector(RewardDistributor.Underfunded.selector, POOL + 1, POOL)
        );
        _propose(2, bytes32(uint256(1)), POOL + 1);
    }

    function test_RevertWhen_UnderfundedDespitePlainTransfer() public {
        // NDS sent without `fund` sits in the pool but backs no root.
        vm.prank(alice);
        assertTrue(token.transfer(address(rewards), 50 ether));
        _setBudget(2 * POOL);
        vm.expectRevert(
            abi.encodeWithSelector(RewardDistributor.Underfunded.selector, POOL + 1, POOL)
        );
        _propose(1, bytes32(uint256(1)), POOL + 1);
    }

    function test_ProposeRoot_FundedBySubscriptionRevenue() public {
        _setBudget(2 * POOL);
        (, bytes32[][] memory proofs) = _publish(_addrs(alice), _uints(POOL));
        rewards.claim(alice, POOL, proofs[0]);

        // bob subscribes for a month: 80% of 10 NDS accrues to the pool, flushed by anyone.
        vm.startPrank(bob);
        token.approve(address(subscriptions), 10 ether);
        subscriptions.subscribe(bob, 1, 10 ether);
        vm.stopPrank();
        subscriptions.flushRevenue();
        assertEq(token.balanceOf(address(rewards)), 8 ether);
        assertEq(rewards.totalFunded(), POOL + 8 ether);

        _propose(2, bytes32(uint256(1)), POOL + 8 ether);
        assertEq(rewards.pendingRoot().totalCumulative, POOL + 8 ether);
    }

    // ------------------------------------------------------------------ fund

    function test_Fund_PullsTokensAndCountsThem() public {
        vm.startPrank(alice);
        token.approve(address(rewards), 500 ether);
        rewards.fund(500 ether);
        vm.stopPrank();

        assertEq(rewards.totalFunded(), POOL + 500 ether);
        assertEq(token.balanceOf(address(rewards)), POOL + 500 ether);
        assertEq(token.balanceOf(alice), DEV_NDS - 500 ether);
    }

    function test_Fund_EmitsFunded() public {
        vm.startPrank(alice);
        token.approve(address(rewards), 500 ether);
        vm.expectEmit(address(rewards));
        emit RewardDistributor.Funded(alice, 500 ether, POOL + 500 ether);
        rewards.fund(500 ether);
        vm.stopPrank();
    }

    function test_Fund_RaisesWhatRootsMayDistribute() public {
        _setBudget(2 * POOL);
        vm.startPrank(alice);
        token.approve(address(rewards), 1 ether);
        rewards.fund(1 ether);
        vm.stopPrank();
        _propose(1, bytes32(uint256(1)), POOL + 1 ether);
        assertEq(rewards.pendingRoot().totalCumulative, POOL + 1 ether);
    }

    function test_RevertWhen_FundZero() public {
        vm.expectRevert(RewardDistributor.ZeroAmount.selector);
        vm.prank(alice);
        rewards.fund(0);
    }

    function test_RevertWhen_FundWithoutAllowance() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(rewards), 0, 1 ether
            )
        );
        vm.prank(alice);
        rewards.fund(1 ether);
    }

    // ------------------------------------------------------------------ acceptRoot

    function test_RevertWhen_AcceptWithoutPendingRoot() public {
        vm.expectRevert(RewardDistributor.NoPendingRoot.selector);
        rewards.acceptRoot();
    }

    function test_RevertWhen_AcceptBeforeValidAt() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        uint64 validAt = rewards.pendingRoot().validAt;
        vm.warp(validAt - 1);
        vm.expectRevert(
            abi.encodeWithSelector(RewardDistributor.ChallengeWindowOpen.selector, validAt)
        );
        rewards.acceptRoot();
    }

    function test_RevertWhen_AcceptInSameBlockAsProposal() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        vm.expectRevert(
            abi.encodeWithSelector(
                RewardDistributor.ChallengeWindowOpen.selector, uint64(block.timestamp) + WINDOW
            )
        );
        rewards.acceptRoot();
    }

    function test_AcceptRoot_AtValidAtMakesRootCurrent() public {
        (bytes32 root,) = _tree(_five(), _epoch1());
        _propose(1, root, 8_000 ether);
        vm.warp(block.timestamp + WINDOW); // exactly validAt
        rewards.acceptRoot();

        assertEq(rewards.currentRoot(), root);
        assertEq(rewards.currentDataHash(), _dataHash(1));
        assertEq(rewards.totalCumulative(), 8_000 ether);
        assertEq(rewards.currentEpoch(), 1);
        assertEq(rewards.rootEpoch(), 1);
    }

    function test_AcceptRoot_ClearsPendingRoot() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        _waitAndAccept();
        RewardDistributor.PendingRoot memory p = rewards.pendingRoot();
        assertEq(p.root, bytes32(0));
        assertEq(p.dataHash, bytes32(0));
        assertEq(p.totalCumulative, 0);
        assertEq(p.epoch, 0);
        assertEq(p.validAt, 0);
    }

    function test_AcceptRoot_ByAnyone() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        vm.warp(block.timestamp + WINDOW);
        vm.prank(stranger);
        rewards.acceptRoot();
        assertEq(rewards.currentRoot(), bytes32(uint256(1)));
    }

    function test_AcceptRoot_EmitsRootAccepted() public {
        (bytes32 root,) = _tree(_five(), _epoch1());
        _propose(1, root, 8_000 ether);
        vm.warp(block.timestamp + WINDOW);
        vm.expectEmit(address(rewards));
        emit RewardDistributor.RootAccepted(1, root, 8_000 ether, _dataHash(1));
        rewards.acceptRoot();
    }

    function test_RevertWhen_AcceptTwice() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        _waitAndAccept();
        vm.expectRevert(RewardDistributor.NoPendingRoot.selector);
        rewards.acceptRoot();
    }

    function test_AcceptRoot_KeepsWindowOfProposalTime() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        uint64 validAt = rewards.pendingRoot().validAt;
        _makeRoomForLongWindows();
        vm.prank(address(timelock));
        rewards.setChallengePeriod(1 days); // applies to later proposals only
        assertEq(rewards.pendingRoot().validAt, validAt);
        vm.warp(validAt);
        rewards.acceptRoot();
        assertEq(rewards.currentEpoch(), 1);
    }

    // ------------------------------------------------------------------ revokeRoot

    function test_RevertWhen_RevokeCallerNotGuardian() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector,
                oracle,
                rewards.GUARDIAN_ROLE()
            )
        );
        vm.prank(oracle);
        rewards.revokeRoot();
    }

    function test_RevertWhen_RevokeWithoutPendingRoot() public {
        vm.prank(address(timelock));
        vm.expectRevert(RewardDistributor.NoPendingRoot.selector);
        rewards.revokeRoot();
    }

    function test_RevokeRoot_SettlesEpochWithoutPaying() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        vm.prank(address(timelock));
        rewards.revokeRoot();

        assertEq(rewards.currentEpoch(), 1);
        assertEq(rewards.rootEpoch(), 0);
        assertEq(rewards.currentRoot(), bytes32(0));
        assertEq(rewards.totalCumulative(), 0);
        assertEq(rewards.pendingRoot().epoch, 0);
    }

    function test_RevokeRoot_EmitsRootRevoked() public {
        _propose(1, bytes32(uint256(7)), 1 ether);
        vm.expectEmit(address(rewards));
        emit RewardDistributor.RootRevoked(1, bytes32(uint256(7)));
        vm.prank(address(timelock));
        rewards.revokeRoot();
    }

    function test_RevertWhen_RevokedEpochProposedAgain() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        vm.prank(address(timelock));
        rewards.revokeRoot();
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.WrongEpoch.selector, 1, 2));
        _propose(1, bytes32(uint256(2)), 1 ether);
    }

    function test_RevokeRoot_RevokedRootNeverAccepted() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        vm.prank(address(timelock));
        rewards.revokeRoot();
        vm.warp(block.timestamp + WINDOW);
        vm.expectRevert(RewardDistributor.NoPendingRoot.selector);
        rewards.acceptRoot();
    }

    function test_RevokeRoot_RevokedRootNeverClaimable() public {
        (bytes32 bad, bytes32[][] memory badProofs) = _tree(_addrs(carol), _uints(BUDGET));
        _propose(1, bad, BUDGET);
        vm.prank(address(timelock));
        rewards.revokeRoot();
        (, bytes32[][] memory proofs) = _publish(_five(), _epoch1()); // epoch 2

        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        rewards.claim(carol, BUDGET, badProofs[0]);
        assertEq(rewards.claim(carol, 500 ether, proofs[2]), 500 ether);
    }

    function test_RevokeRoot_NextEpochIsAccepted() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        vm.prank(address(timelock));
        rewards.revokeRoot();

        (bytes32 root,) = _publish(_five(), _epoch1());
        assertEq(rewards.currentEpoch(), 2);
        assertEq(rewards.rootEpoch(), 2);
        assertEq(rewards.currentRoot(), root);
    }

    function test_RevokeRoot_AllowedAfterWindowWhileNotAccepted() public {
        _propose(1, bytes32(uint256(1)), 1 ether);
        vm.warp(block.timestamp + WINDOW + 1);
        vm.prank(address(timelock));
        rewards.revokeRoot();
        assertEq(rewards.currentEpoch(), 1);
    }

    function test_RevokeRoot_PreviousRootStaysClaimable() public {
        (bytes32 root1, bytes32[][] memory proofs) = _publish(_five(), _epoch1());
        (bytes32 bad,) = _tree(_addrs(carol), _uints(8_000 ether + BUDGET));
        _propose(2, bad, 8_000 ether + BUDGET);
        vm.prank(address(timelock));
        rewards.revokeRoot();

        assertEq(rewards.currentRoot(), root1);
        assertEq(rewards.rootEpoch(), 1);
        assertEq(rewards.currentEpoch(), 2);
        assertEq(rewards.totalCumulative(), 8_000 ether);
        assertEq(rewards.claim(operator1, 3_000 ether, proofs[3]), 3_000 ether);
    }

    // ------------------------------------------------------------------ claim

    function test_Claim_PaysAccount() public {
        (, bytes32[][] memory proofs) = _publish(_five(), _epoch1());
        uint256 before = token.balanceOf(bob);
        uint256 paid = rewards.claim(bob, 2_000 ether, proofs[1]);

        assertEq(paid, 2_000 ether);
        assertEq(token.balanceOf(bob) - before, 2_000 ether);
        assertEq(token.balanceOf(address(rewards)), POOL - 2_000 ether);
        assertEq(rewards.claimed(bob), 2_000 ether);
        assertEq(rewards.totalFunded(), POOL); // claims leave the funding total alone
    }

    function test_Claim_EmitsClaimed() public {
        (, bytes32[][] memory proofs) = _publish(_five(), _epoch1());
        vm.expectEmit(address(rewards));
        emit RewardDistributor.Claimed(bob, 2_000 ether, 2_000 ether);
        rewards.claim(bob, 2_000 ether, proofs[1]);
    }

    function test_Claim_ByThirdPartyPaysAccount() public {
        (, bytes32[][] memory proofs) = _publish(_five(), _epoch1());
        uint256 aliceBefore = token.balanceOf(alice);
        uint256 strangerBefore = token.balanceOf(stranger);
        vm.prank(stranger);
        rewards.claim(alice, 1_000 ether, proofs[0]);

        assertEq(token.balanceOf(alice) - aliceBefore, 1_000 ether);
        assertEq(token.balanceOf(stranger), strangerBefore);
    }

    function test_Claim_EveryLeafOfEveryTreeSize() public {
        address[] memory all = _five();
        uint256[] memory amounts = _uints(1 ether, 2 ether, 3 ether, 4 ether, 5 ether);
        uint256 cumulative = 0;
        for (uint256 n = 1; n <= 5; n++) {
            // Epoch n: the first n accounts hold n times their base amount.
            address[] memory accounts = new address[](n);
            uint256[] memory values = new uint256[](n);
            for (uint256 i = 0; i < n; i++) {
                accounts[i] = all[i];
                values[i] = amounts[i] * n;
            }
            (, bytes32[][] memory proofs) = _publish(accounts, values);
            for (uint256 i = 0; i < n; i++) {
                uint256 already = rewards.claimed(accounts[i]);
                assertEq(rewards.claim(accounts[i], values[i], proofs[i]), values[i] - already);
            }
            cumulative = _sum(values);
            assertEq(token.balanceOf(address(rewards)), POOL - cumulative);
        }
    }

    function test_Claim_SingleLeafTreeHasEmptyProof() public {
        (bytes32 root, bytes32[][] memory proofs) = _publish(_addrs(carol), _uints(42 ether));
        assertEq(proofs[0].length, 0);
        assertEq(root, StandardMerkle.leaf(carol, 42 ether));
        assertEq(rewards.claim(carol, 42 ether, proofs[0]), 42 ether);
    }

    function test_RevertWhen_ClaimWrongAmount() public {
        (, bytes32[][] memory proofs) = _publish(_five(), _epoch1());
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        rewards.claim(bob, 2_000 ether + 1, proofs[1]);
    }

    function test_RevertWhen_ClaimWrongAccount() public {
        (, bytes32[][] memory proofs) = _publish(_five(), _epoch1());
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        rewards.claim(stranger, 2_000 ether, proofs[1]);
    }

    function test_RevertWhen_ClaimWithAnotherLeafsProof() public {
        (, bytes32[][] memory proofs) = _publish(_five(), _epoch1());
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        rewards.claim(bob, 2_000 ether, proofs[0]);
    }

    function test_RevertWhen_ClaimWithEmptyProof() public {
        _publish(_five(), _epoch1());
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        rewards.claim(bob, 2_000 ether, new bytes32[](0));
    }

    function test_RevertWhen_ClaimBeforeAnyRoot() public {
        (bytes32 root, bytes32[][] memory proofs) = _tree(_five(), _epoch1());
        _propose(1, root, 8_000 ether); // pending, not accepted
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        rewards.claim(bob, 2_000 ether, proofs[1]);
    }

    function test_RevertWhen_ClaimAgainstPendingRoot() public {
        _publish(_five(), _epoch1());
        (bytes32 root2, bytes32[][] memory proofs2) = _tree(_five(), _epoch2());
        _propose(2, root2, 13_500 ether);
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        rewards.claim(bob, 2_500 ether, proofs2[1]);
    }

    function test_RevertWhen_ClaimTwice() public {
        (, bytes32[][] memory proofs) = _publish(_five(), _epoch1());
        rewards.claim(bob, 2_000 ether, proofs[1]);
        vm.expectRevert(RewardDistributor.NothingToClaim.selector);
        rewards.claim(bob, 2_000 ether, proofs[1]);
    }

    function test_RevertWhen_ClaimZeroAllocation() public {
        (, bytes32[][] memory proofs) = _publish(_addrs(alice, bob), _uints(1 ether, 0));
        vm.expectRevert(RewardDistributor.NothingToClaim.selector);
        rewards.claim(bob, 0, proofs[1]);
    }

    function test_RevertWhen_ClaimUnchangedLeafInLaterEpoch() public {
        (, bytes32[][] memory proofs1) = _publish(_five(), _epoch1());
        rewards.claim(carol, 500 ether, proofs1[2]);
        (, bytes32[][] memory proofs2) = _publish(_five(), _epoch2()); // carol still 500
        vm.expectRevert(RewardDistributor.NothingToClaim.selector);
        rewards.claim(carol, 500 ether, proofs2[2]);
    }

    function test_Claim_LaterEpochProofPaysAllEpochs() public {
        _publish(_five(), _epoch1());
        (, bytes32[][] memory proofs2) = _publish(_five(), _epoch2());
        uint256 before = token.balanceOf(operator1);
        assertEq(rewards.claim(operator1, 5_000 ether, proofs2[3]), 5_000 ether);
        assertEq(token.balanceOf(operator1) - before, 5_000 ether);
        assertEq(rewards.claimed(operator1), 5_000 ether);
    }

    function test_Claim_PaysOnlyTheDifference() public {
        (, bytes32[][] memory proofs1) = _publish(_five(), _epoch1());
        rewards.claim(operator1, 3_000 ether, proofs1[3]);
        (, bytes32[][] memory proofs2) = _publish(_five(), _epoch2());

        uint256 before = token.balanceOf(operator1);
        vm.expectEmit(address(rewards));
        emit RewardDistributor.Claimed(operator1, 2_000 ether, 5_000 ether);
        assertEq(rewards.claim(operator1, 5_000 ether, proofs2[3]), 2_000 ether);
        assertEq(token.balanceOf(operator1) - before, 2_000 ether);
        assertEq(rewards.claimed(operator1), 5_000 ether);
    }

    function test_RevertWhen_ClaimWithSupersededProof() public {
        (, bytes32[][] memory proofs1) = _publish(_five(), _epoch1());
        _publish(_five(), _epoch2());
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        rewards.claim(operator1, 3_000 ether, proofs1[3]);
    }

    function test_RevertWhen_ClaimUnchangedLeafWithOldPath() public {
        // carol's leaf is the same in both epochs, but other leaves changed: her old sibling
        // path no longer leads to the current root; the same leaf with the new path pays.
        (, bytes32[][] memory proofs1) = _publish(_five(), _epoch1());
        (, bytes32[][] memory proofs2) = _publish(_five(), _epoch2());
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        rewards.claim(carol, 500 ether, proofs1[2]);
        assertEq(rewards.claim(carol, 500 ether, proofs2[2]), 500 ether);
    }

    function test_Claim_OldProofValidWhileTreeUnchanged() public {
        // An epoch that brings no new rewards republishes the same tree: old proofs still work.
        (bytes32 root1, bytes32[][] memory proofs1) = _publish(_five(), _epoch1());
        (bytes32 root2,) = _publish(_five(), _epoch1());
        assertEq(root2, root1);
        assertEq(rewards.rootEpoch(), 2);
        assertEq(rewards.claim(alice, 1_000 ether, proofs1[0]), 1_000 ether);
    }

    function test_Claim_NewAccountWithoutTokens() public {
        address fresh = makeAddr("fresh-operator");
        (, bytes32[][] memory proofs) = _publish(_addrs(fresh, alice), _uints(3 ether, 1 ether));
        rewards.claim(fresh, 3 ether, proofs[0]);
        assertEq(token.balanceOf(fresh), 3 ether);
    }

    // ------------------------------------------------------------------ setEpochBudget

    function test_SetEpochBudget_ByTimelock() public {
        _setBudget(25_000 ether);
        assertEq(rewards.epochBudget(), 25_000 ether);
    }

    function test_SetEpochBudget_EmitsEpochBudgetChanged() public {
        vm.expectEmit(address(rewards));
        emit RewardDistributor.EpochBudgetChanged(BUDGET, 25_000 ether);
        _setBudget(25_000 ether);
    }

    function test_SetEpochBudget_AppliesToNextProposal() public {
        _setBudget(25_000 ether);
        _propose(1, bytes32(uint256(1)), 25_000 ether);
        assertEq(rewards.pendingRoot().totalCumulative, 25_000 ether);
    }

    function test_SetEpochBudget_ZeroFreezesIncreases() public {
        _publish(_five(), _epoch1());
        _setBudget(0);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.BudgetExceeded.selector, 1, 0));
        _propose(2, bytes32(uint256(1)), 8_000 ether + 1);
    }

    function test_RevertWhen_SetEpochBudgetCallerNotAdmin() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector,
                oracle,
                rewards.DEFAULT_ADMIN_ROLE()
            )
        );
        vm.prank(oracle);
        rewards.setEpochBudget(1);
    }

    function test_RevertWhen_SetEpochBudgetCallerIsDeployer() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector,
                address(this),
                rewards.DEFAULT_ADMIN_ROLE()
            )
        );
        rewards.setEpochBudget(1);
    }

    // ------------------------------------------------------------------ setChallengePeriod

    /// @notice The unbonding period (1 hour locally) caps the window at 1 hour minus a governance
    /// round; unit tests of longer windows first raise it to the maximum.
    function _makeRoomForLongWindows() internal {
        vm.prank(address(timelock));
        registry.setUnbondingPeriod(365 days);
    }

    function _governanceRound() internal view returns (uint64) {
        return uint64(governor.votingDelay() + governor.votingPeriod() + timelock.getMinDelay());
    }

    function test_SetChallengePeriod_ByTimelock() public {
        _makeRoomForLongWindows();
        vm.prank(address(timelock));
        rewards.setChallengePeriod(1 days);
        assertEq(rewards.challengePeriod(), 1 days);
    }

    function test_SetChallengePeriod_EmitsChallengePeriodChanged() public {
        _makeRoomForLongWindows();
        vm.expectEmit(address(rewards));
        emit RewardDistributor.ChallengePeriodChanged(WINDOW, 1 days);
        vm.prank(address(timelock));
        rewards.setChallengePeriod(1 days);
    }

    /// @notice The shortest window is one second longer than a governance round (91 s here).
    function test_SetChallengePeriod_AcceptsOneSecondMoreThanGovernanceRound() public {
        uint64 shortest = _governanceRound() + 1;
        vm.prank(address(timelock));
        rewards.setChallengePeriod(shortest);
        assertEq(rewards.challengePeriod(), shortest);
    }

    function test_RevertWhen_ChallengePeriodNotLongerThanGovernanceRound() public {
        uint64 round = _governanceRound();
        vm.prank(address(timelock));
        vm.expectRevert(
            abi.encodeWithSelector(ITimingGuard.ChallengeWindowTooShort.selector, round, round)
        );
        rewards.setChallengePeriod(round);
    }

    function test_RevertWhen_ChallengePeriodLeavesUnbondingTooShort() public {
        uint64 window = UNBONDING_LOCAL - _governanceRound(); // window + round == unbonding
        vm.prank(address(timelock));
        vm.expectRevert(
            abi.encodeWithSelector(
                ITimingGuard.UnbondingTooShort.selector, UNBONDING_LOCAL, UNBONDING_LOCAL
            )
        );
        rewards.setChallengePeriod(window);
    }

    function test_SetChallengePeriod_AcceptsMaximum() public {
        _makeRoomForLongWindows();
        vm.prank(address(timelock));
        rewards.setChallengePeriod(30 days);
        assertEq(rewards.challengePeriod(), rewards.MAX_CHALLENGE_PERIOD());
    }

    function test_SetChallengePeriod_AppliesToNextProposal() public {
        _makeRoomForLongWindows();
        vm.prank(address(timelock));
        rewards.setChallengePeriod(2 hours);
        _propose(1, bytes32(uint256(1)), 1 ether);
        assertEq(rewards.pendingRoot().validAt, block.timestamp + 2 hours);
    }

    function test_RevertWhen_ChallengePeriodZero() public {
        vm.prank(address(timelock));
        vm.expectRevert(
            abi.encodeWithSelector(RewardDistributor.InvalidChallengePeriod.selector, 0)
        );
        rewards.setChallengePeriod(0);
    }

    function test_RevertWhen_ChallengePeriodAboveMaximum() public {
        vm.prank(address(timelock));
        vm.expectRevert(
            abi.encodeWithSelector(RewardDistributor.InvalidChallengePeriod.selector, 30 days + 1)
        );
        rewards.setChallengePeriod(30 days + 1);
    }

    function testFuzz_SetChallengePeriod_Bounds(uint64 period) public {
        _makeRoomForLongWindows();
        uint64 round = _governanceRound();
        bool inBounds = period >= 1 && period <= 30 days;
        bool valid = inBounds && period > round;
        if (!inBounds) {
            vm.expectRevert(
                abi.encodeWithSelector(RewardDistributor.InvalidChallengePeriod.selector, period)
            );
        } else if (!valid) {
            vm.expectRevert(
                abi.encodeWithSelector(ITimingGuard.ChallengeWindowTooShort.selector, period, round)
            );
        }
        vm.prank(address(timelock));
        rewards.setChallengePeriod(period);
        assertEq(rewards.challengePeriod(), valid ? period : WINDOW);
    }

    function test_RevertWhen_SetChallengePeriodCallerNotAdmin() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector,
                oracle,
                rewards.DEFAULT_ADMIN_ROLE()
            )
        );
        vm.prank(oracle);
        rewards.setChallengePeriod(1 days);
    }

    // ------------------------------------------------------------------ oracle rotation

    function test_OracleRotation_NewOracleProposes() public {
        address newOracle = makeAddr("new-oracle");
        bytes32 role = rewards.ORACLE_ROLE();
        vm.startPrank(address(timelock));
        rewards.grantRole(role, newOracle);
        rewards.revokeRole(role, oracle);
        vm.stopPrank();

        vm.prank(newOracle);
        rewards.proposeRoot(1, bytes32(uint256(1)), 1 ether, bytes32(0));
        assertEq(rewards.pendingRoot().epoch, 1);
    }

    function test_RevertWhen_RevokedOracleProposes() public {
        bytes32 role = rewards.ORACLE_ROLE();
        vm.prank(address(timelock));
        rewards.revokeRole(role, oracle);

        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, oracle, role
            )
        );
        _propose(1, bytes32(uint256(1)), 1 ether);
    }

    function test_OracleRotation_EmitsRoleEvents() public {
        address newOracle = makeAddr("new-oracle");
        bytes32 role = rewards.ORACLE_ROLE();
        vm.startPrank(address(timelock));
        vm.expectEmit(address(rewards));
        emit IAccessControl.RoleGranted(role, newOracle, address(timelock));
        rewards.grantRole(role, newOracle);
        vm.expectEmit(address(rewards));
        emit IAccessControl.RoleRevoked(role, oracle, address(timelock));
        rewards.revokeRole(role, oracle);
        vm.stopPrank();
    }

    function test_OracleRotation_PendingRootSurvives() public {
        // A root proposed by the old key still settles normally after the rotation.
        _propose(1, bytes32(uint256(1)), 1 ether);
        bytes32 role = rewards.ORACLE_ROLE();
        vm.prank(address(timelock));
        rewards.revokeRole(role, oracle);
        _waitAndAccept();
        assertEq(rewards.currentEpoch(), 1);
    }

    function test_RevertWhen_OracleRotatedByNonAdmin() public {
        bytes32 role = rewards.ORACLE_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector,
                oracle,
                rewards.DEFAULT_ADMIN_ROLE()
            )
        );
        vm.prank(oracle);
        rewards.grantRole(role, stranger);
    }

    function test_GuardianRotation_ByAdmin() public {
        address council = makeAddr("security-council");
        bytes32 role = rewards.GUARDIAN_ROLE();
        vm.prank(address(timelock));
        rewards.grantRole(role, council);

        _propose(1, bytes32(uint256(1)), 1 ether);
        vm.prank(council);
        rewards.revokeRoot();
        assertEq(rewards.currentEpoch(), 1);
    }
}

/// @notice Receipt gas of claim and proposeRoot, each measured cold in its own test transaction
/// (state prepared in setUp, see RewardTestBase._receiptGas). Before the tests: epoch 1 (five
/// funded accounts) accepted, bob claimed it, epoch 2 accepted; nobody else claimed.
contract RewardDistributorGasTest is RewardTestBase {
    uint256 internal constant LATER_CLAIM_TARGET = 62_000; // issue 8: with the claimed total
    uint256 internal constant FIRST_CLAIM_TARGET = 95_000;
    uint256 internal constant PROPOSE_TARGET = 100_000;

    bytes32[][] internal proofs2;

    function _epoch1() internal pure returns (uint256[] memory) {
        return _uints(1_000 ether, 2_000 ether, 500 ether, 3_000 ether, 1_500 ether);
    }

    function _epoch2() internal pure returns (uint256[] memory) {
        return _uints(1_500 ether, 2_500 ether, 500 ether, 5_000 ether, 4_000 ether);
    }

    function setUp() public override {
        super.setUp();
        (, bytes32[][] memory proofs1) = _publish(_five(), _epoch1());
        rewards.claim(bob, 2_000 ether, proofs1[1]);
        (, bytes32[][] memory p2) = _publish(_five(), _epoch2());
        for (uint256 i = 0; i < p2.length; i++) {
            proofs2.push(p2[i]);
        }
    }

    function test_Gas_ClaimInLaterEpoch() public {
        bytes memory data = abi.encodeCall(rewards.claim, (bob, 2_500 ether, proofs2[1]));
        (uint256 receipt,) = _receiptGas(bob, address(rewards), data);
        assertEq(rewards.claimed(bob), 2_500 ether);
        assertLe(receipt, LATER_CLAIM_TARGET, "claim in a later epoch");
    }

    function test_Gas_FirstClaim() public {
        bytes memory data = abi.encodeCall(rewards.claim, (operator1, 5_000 ether, proofs2[3]));
        (uint256 receipt,) = _receiptGas(operator1, address(rewards), data);
        assertEq(rewards.claimed(operator1), 5_000 ether);
        assertEq(token.balanceOf(operator1), DEV_NDS + 5_000 ether); // was already an NDS holder
        assertLe(receipt, FIRST_CLAIM_TARGET, "first claim");
    }

    function test_Gas_FirstClaimSubmittedByThirdParty() public {
        bytes memory data = abi.encodeCall(rewards.claim, (operator2, 4_000 ether, proofs2[4]));
        (uint256 receipt,) = _receiptGas(alice, address(rewards), data);
        assertEq(rewards.claimed(operator2), 4_000 ether);
        assertLe(receipt, FIRST_CLAIM_TARGET, "first claim by a relayer");
    }

    function test_Gas_ProposeRoot() public {
        (bytes32 root,) =
            _tree(_five(), _uints(2_000 ether, 3_000 ether, 1_000 ether, 6_000 ether, 5_000 ether));
        bytes memory data =
            abi.encodeCall(rewards.proposeRoot, (3, root, 17_000 ether, _dataHash(3)));
        (uint256 receipt,) = _receiptGas(oracle, address(rewards), data);
        assertEq(rewards.pendingRoot().epoch, 3);
        assertLe(receipt, PROPOSE_TARGET, "proposeRoot");
    }

    /// forge-config: default.fuzz.runs = 32
    function testFuzz_Gas_ProposeRootAnyOperatorCount(uint8 count) public {
        // The calldata and the work are the same whatever the tree: only the root changes.
        uint256 n = _bound(count, 1, 64);
        address[] memory accounts = new address[](n);
        uint256[] memory amounts = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            accounts[i] = vm.addr(0x1000 + i);
            amounts[i] = 1 ether + i;
        }
        (bytes32 root,) = _tree(accounts, amounts);
        uint256 total = 13_500 ether + _sum(amounts) % BUDGET;
        bytes memory data = abi.encodeCall(rewards.proposeRoot, (3, root, total, _dataHash(3)));
        (uint256 receipt,) = _receiptGas(oracle, address(rewards), data);
        assertLe(receipt, PROPOSE_TARGET, "proposeRoot");
    }
}

/// @notice The very first claim of the distributor's life: the pool's own balance slot and every
/// other slot are untouched so far. Epoch 1 accepted in setUp, nobody claimed.
contract RewardDistributorFirstEverClaimGasTest is RewardTestBase {
    bytes32[][] internal proofs1;

    function setUp() public override {
        super.setUp();
        (, bytes32[][] memory p) =
            _publish(_five(), _uints(1_000 ether, 2_000 ether, 500 ether, 3_000 ether, 1_500 ether));
        for (uint256 i = 0; i < p.length; i++) {
            proofs1.push(p[i]);
        }
    }

    function test_Gas_FirstClaimEver() public {
        bytes memory data = abi.encodeCall(rewards.claim, (carol, 500 ether, proofs1[2]));
        (uint256 receipt,) = _receiptGas(carol, address(rewards), data);
        assertEq(rewards.claimed(carol), 500 ether);
        assertLe(receipt, 95_000, "first claim ever");
    }
}

/// @notice The first proposal of the distributor's life (epoch 1, straight from the deployment).
contract RewardDistributorFirstProposalGasTest is RewardTestBase {
    function test_Gas_FirstProposeRoot() public {
        (bytes32 root,) = _tree(_addrs(carol, alice), _uints(9_000 ether, 1_000 ether));
        bytes memory data = abi.encodeCall(rewards.proposeRoot, (1, root, BUDGET, _dataHash(1)));
        (uint256 receipt,) = _receiptGas(oracle, address(rewards), data);
        assertEq(rewards.pendingRoot().epoch, 1);
        assertLe(receipt, 100_000, "first proposeRoot");
    }
}

/// @notice The same measurements with 128 operators (proofs of 7 nodes): the claim grows with the
/// proof (calldata and hashing, about 650 gas per level); proposeRoot does not.
contract RewardDistributorLargeTreeGasTest is RewardTestBase {
    uint256 internal constant N = 128;

    address[] internal operators;
    uint256[] internal amounts2;
    bytes32[][] internal proofs2;

    function setUp() public override {
        super.setUp();
        uint256[] memory amounts1 = new uint256[](N);
        uint256[] memory a2 = new uint256[](N);
        address[] memory ops = new address[](N);
        for (uint256 i = 0; i < N; i++) {
            ops[i] = vm.addr(0x1000 + i);
            amounts1[i] = 10 ether + i;
            a2[i] = 25 ether + 3 * i;
            operators.push(ops[i]);
            amounts2.push(a2[i]);
        }
        vm.prank(address(timelock));
        assertTrue(token.transfer(ops[1], 1 ether)); // an NDS holder before its first claim
        (, bytes32[][] memory proofs1) = _publish(ops, amounts1);
        rewards.claim(ops[0], amounts1[0], proofs1[0]);
        (, bytes32[][] memory p2) = _publish(ops, a2);
        for (uint256 i = 0; i < N; i++) {
            proofs2.push(p2[i]);
        }
    }

    function test_Gas_ClaimInLaterEpoch128Operators() public {
        bytes memory data = abi.encodeCall(rewards.claim, (operators[0], amounts2[0], proofs2[0]));
        (uint256 receipt,) = _receiptGas(operators[0], address(rewards), data);
        console.log("  proof length:", proofs2[0].length);
        assertLe(receipt, 62_000, "claim in a later epoch, 128 operators");
    }

    function test_Gas_FirstClaim128Operators() public {
        bytes memory data = abi.encodeCall(rewards.claim, (operators[1], amounts2[1], proofs2[1]));
        (uint256 receipt,) = _receiptGas(operators[1], address(rewards), data);
        console.log("  proof length:", proofs2[1].length);
        assertLe(receipt, 95_000, "first claim, 128 operators");
    }
}
