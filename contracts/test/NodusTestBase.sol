// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {NDSToken} from "../src/NDSToken.sol";
import {NodeRegistry} from "../src/NodeRegistry.sol";
import {NodusGovernor} from "../src/NodusGovernor.sol";
import {NodusSwap} from "../src/NodusSwap.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {SubscriptionManager} from "../src/SubscriptionManager.sol";
import {TimingGuard} from "../src/TimingGuard.sol";
import {NodusDeployment} from "../script/NodusDeployment.sol";

/// @notice The whole protocol deployed exactly as contracts/script/Deploy.s.sol deploys it on a
/// local chain, with named funded accounts. The test contract is the deployer and keeps nothing.
abstract contract NodusTestBase is Test {
    uint256 internal constant DEV_NDS = 100_000 ether;

    NodusDeployment.Params internal params;
    NDSToken internal token;
    TimelockController internal timelock;
    NodusGovernor internal governor;
    RewardDistributor internal rewards;
    SubscriptionManager internal subscriptions;
    NodeRegistry internal registry;
    NodusSwap internal swap;
    TimingGuard internal guard;

    address internal oracle = makeAddr("oracle");
    address internal guardian = makeAddr("guardian");
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal carol = makeAddr("carol");
    address internal operator1 = makeAddr("operator1");
    address internal operator2 = makeAddr("operator2");
    address internal agent1 = makeAddr("agent1");
    address internal agent2 = makeAddr("agent2");

    function setUp() public virtual {
        vm.warp(1_750_000_000); // a realistic clock, not 1
        vm.deal(address(this), 1_000 ether);
        address[] memory dev = new address[](5);
        (dev[0], dev[1], dev[2], dev[3], dev[4]) = (alice, bob, carol, operator1, operator2);
        params = NodusDeployment.localParams(address(this), oracle, dev);
        params.guardian = guardian;
        NodusDeployment.Deployment memory d = NodusDeployment.deploy(params);
        _adopt(d);
    }

    /// @notice The handles, for a handler contract's constructor.
    struct Contracts {
        NDSToken token;
        TimelockController timelock;
        NodusGovernor governor;
        RewardDistributor rewards;
        SubscriptionManager subscriptions;
        NodeRegistry registry;
        address swap;
    }

    function _contracts() internal view returns (Contracts memory) {
        return Contracts(token, timelock, governor, rewards, subscriptions, registry, address(swap));
    }

    /// @notice Points the test's handles at a deployment's contracts.
    function _adopt(NodusDeployment.Deployment memory d) internal {
        (token, timelock, governor, rewards) = (d.token, d.timelock, d.governor, d.rewards);
        (subscriptions, registry, swap, guard) = (d.subscriptions, d.registry, d.swap, d.guard);
    }
}
