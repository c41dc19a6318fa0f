// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Script} from "forge-std/Script.sol";
import {NodusDeployment} from "./NodusDeployment.sol";

/// @title Deploy
/// @notice Deploys Nodus and writes `deployments/<chainId>.json` (or NODUS_DEPLOY_OUTPUT) (each contract's address under
/// its name, plus `chainId` and `startBlock`), which the control plane reads.
/// @dev Run by scripts/deploy. Environment: `PRIVATE_KEY` (the deployer, required), `NODUS_ORACLE`
/// (default: anvil's account 1), `NODUS_GUARDIAN` (the fast veto of pending reward roots;
/// default on a local chain: anvil's account 2; required on any other chain; written to the
/// deployments file as `guardian`). On a local chain (31337) the ten anvil accounts are the
/// circulating holders (100,000 NDS each). Any other chain takes NodusDeployment.productionParams
/// and requires `NODUS_HOLDERS` (comma-separated addresses) and `NODUS_HOLDER_NDS` (their amounts
/// in NDS wei, same order): the circulating supply. Override each other default with its NODUS_*
/// variable.
contract Deploy is Script {
    /// anvil's default mnemonic accounts 0..9 ("test test ... junk").
    string internal constant ANVIL_MNEMONIC =
        "test test test test test test test test test test test junk";

    function run() external returns (NodusDeployment.Deployment memory d) {
        uint256 deployerKey = vm.envUint("PRIVATE_KEY");
        address deployer = vm.addr(deployerKey);
        NodusDeployment.Params memory p = _params(deployer);
        uint256 startBlock = block.number;

        vm.startBroadcast(deployerKey);
        d = NodusDeployment.deploy(p);
        vm.stopBroadcast();

        _write(d, startBlock, p.guardian);
    }

    function _params(address deployer) internal view returns (NodusDeployment.Params memory p) {
        address defaultOracle = vm.addr(vm.deriveKey(ANVIL_MNEMONIC, 1));
        address oracle = vm.envOr("NODUS_ORACLE", defaultOracle);
        if (block.chainid == 31337) {
            address[] memory devAccounts = new address[](10);
            for (uint32 i = 0; i < devAccounts.length; i++) {
                devAccounts[i] = vm.addr(vm.deriveKey(ANVIL_MNEMONIC, i));
            }
            p = NodusDeployment.localParams(deployer, oracle, devAccounts);
        } else {
            p = NodusDeployment.productionParams(
                deployer,
                oracle,
                vm.envAddress("NODUS_HOLDERS", ","),
                vm.envUint("NODUS_HOLDER_NDS", ",")
            );
        }
        p.guardian = block.chainid == 31337
            ? vm.envOr("NODUS_GUARDIAN", vm.addr(vm.deriveKey(ANVIL_MNEMONIC, 2)))
            : vm.envAddress("NODUS_GUARDIAN");
        p.pricePerPeriod = vm.envOr("NODUS_PRICE_PER_PERIOD", p.pricePerPeriod);
        p.rewardBps = uint16(vm.envOr("NODUS_REWARD_BPS", uint256(p.rewardBps)));
        p.minStake = vm.envOr("NODUS_MIN_STAKE", p.minStake);
        p.unbondingPeriod = uint64(vm.envOr("NODUS_UNBONDING_PERIOD", uint256(p.unbondingPeriod)));
        p.epochBudget = vm.envOr("NODUS_EPOCH_BUDGET", p.epochBudget);
        p.challengePeriod = uint64(vm.envOr("NODUS_CHALLENGE_PERIOD", uint256(p.challengePeriod)));
        p.votingDelay = uint48(vm.envOr("NODUS_VOTING_DELAY", uint256(p.votingDelay)));
        p.votingPeriod = uint32(vm.envOr("NODUS_VOTING_PERIOD", uint256(p.votingPeriod)));
        p.timelockDelay = vm.envOr("NODUS_TIMELOCK_DELAY", p.timelockDelay);
        p.rewardPoolFunding = vm.envOr("NODUS_REWARD_POOL_FUNDING", p.rewardPoolFunding);
        p.swapNds = vm.envOr("NODUS_SWAP_NDS", p.swapNds);
        p.swapEth = vm.envOr("NODUS_SWAP_ETH", p.swapEth);
    }

    function _write(NodusDeployment.Deployment memory d, uint256 startBlock, address guardian)
        internal
    {
        string memory key = "deployment";
        vm.serializeUint(key, "chainId", block.chainid);
        vm.serializeUint(key, "startBlock", startBlock);
        vm.serializeAddress(key, "guardian", guardian);
        vm.serializeAddress(key, "NDSToken", address(d.token));
        vm.serializeAddress(key, "TimelockController", address(d.timelock));
        vm.serializeAddress(key, "NodusGovernor", address(d.governor));
        vm.serializeAddress(key, "RewardDistributor", address(d.rewards));
        vm.serializeAddress(key, "SubscriptionManager", address(d.subscriptions));
        vm.serializeAddress(key, "NodeRegistry", address(d.registry));
        vm.serializeAddress(key, "TimingGuard", address(d.guard));
        string memory json = vm.serializeAddress(key, "NodusSwap", address(d.swap));
        string memory path = vm.envOr(
            "NODUS_DEPLOY_OUTPUT",
            string.concat(vm.projectRoot(), "/deployments/", vm.toString(block.chainid), ".json")
        );
        vm.writeJson(json, path);
    }
}
