// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Vm.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {RewardTestBase, StandardMerkle} from "./RewardDistributor.t.sol";

/// @notice The trees the off-chain side builds with the npm package (scripts/merkle-tree.mjs,
/// OpenZeppelin's StandardMerkleTree) are the trees RewardDistributor verifies, and the Solidity
/// builder of the other tests builds the same ones.
/// @dev Needs `ffi = true` in foundry.toml (or `forge test --ffi`): it runs `node`.
contract MerkleCompatTest is RewardTestBase {
    string internal constant SCRIPT = "scripts/merkle-tree.mjs";

    address internal operator3 = makeAddr("operator3");
    address internal operator4 = makeAddr("operator4");
    address internal operator5 = makeAddr("operator5");

    function _operators() internal view returns (address[] memory) {
        return _addrs(operator1, operator2, operator3, operator4, operator5);
    }

    /// @notice Odd amounts: one wei, non-round wei counts, a repeating decimal of NDS.
    function _oddAmounts() internal pure returns (uint256[] memory) {
        return _uints(
            1,
            1_234_567_890_123_456_789,
            3_333_333_333_333_333_333_333,
            77 ether + 7,
            999_999_999_999_999_999
        );
    }

    function _command(bool json, address[] memory accounts, uint256[] memory amounts)
        internal
        pure
        returns (string[] memory cmd)
    {
        uint256 head = json ? 3 : 2;
        cmd = new string[](head + 2 * accounts.length);
        cmd[0] = "node";
        cmd[1] = SCRIPT;
        if (json) cmd[2] = "--json";
        for (uint256 i = 0; i < accounts.length; i++) {
            cmd[head + 2 * i] = vm.toString(accounts[i]);
            cmd[head + 2 * i + 1] = vm.toString(amounts[i]);
        }
    }

    /// @notice Root and proofs (input order) from the npm package.
    function _npmTree(address[] memory accounts, uint256[] memory amounts)
        internal
        returns (bytes32 root, bytes32[][] memory proofs)
    {
        bytes memory out = vm.ffi(_command(false, accounts, amounts));
        (root, proofs) = abi.decode(out, (bytes32, bytes32[][]));
    }

    function _assertSameTree(address[] memory accounts, uint256[] memory amounts) internal {
        (bytes32 npmRoot, bytes32[][] memory npmProofs) = _npmTree(accounts, amounts);
        (bytes32 solRoot, bytes32[][] memory solProofs) = StandardMerkle.build(accounts, amounts);
        assertEq(solRoot, npmRoot, "root");
        assertEq(solProofs.length, npmProofs.length, "proof count");
        for (uint256 i = 0; i < npmProofs.length; i++) {
            assertEq(solProofs[i], npmProofs[i], "proof");
        }
    }

    function test_NpmProofsPayEachOperatorExactly() public {
        address[] memory ops = _operators();
        uint256[] memory amounts = _oddAmounts();
        (bytes32 root, bytes32[][] memory proofs) = _npmTree(ops, amounts);
        uint256 total = _sum(amounts);

        _propose(1, root, total);
        vm.warp(block.timestamp + WINDOW);
        rewards.acceptRoot();

        for (uint256 i = 0; i < ops.length; i++) {
            uint256 before = token.balanceOf(ops[i]);
            assertEq(rewards.claim(ops[i], amounts[i], proofs[i]), amounts[i]);
            assertEq(token.balanceOf(ops[i]) - before, amounts[i]);
        }
        assertEq(token.balanceOf(address(rewards)), POOL - total);
    }

    function test_NpmProofRejectsOtherAmount() public {
        address[] memory ops = _operators();
        uint256[] memory amounts = _oddAmounts();
        (bytes32 root, bytes32[][] memory proofs) = _npmTree(ops, amounts);
        _propose(1, root, _sum(amounts));
        vm.warp(block.timestamp + WINDOW);
        rewards.acceptRoot();

        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        rewards.claim(ops[2], amounts[2] + 1, proofs[2]);
    }

    function test_SolidityTreeMatchesNpm() public {
        _assertSameTree(_operators(), _oddAmounts());
    }

    function test_SolidityTreeMatchesNpmForOneToNineLeaves() public {
        for (uint256 n = 1; n <= 9; n++) {
            address[] memory accounts = new address[](n);
            uint256[] memory amounts = new uint256[](n);
            for (uint256 i = 0; i < n; i++) {
                accounts[i] = vm.addr(100 + i);
                amounts[i] = (i + 1) * 1e18 + n;
            }
            _assertSameTree(accounts, amounts);
        }
    }

    /// forge-config: default.fuzz.runs = 16
    function testFuzz_SolidityTreeMatchesNpm(uint256 seed, uint8 size) public {
        uint256 n = _bound(size, 1, 12);
        address[] memory accounts = new address[](n);
        uint256[] memory amounts = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            accounts[i] = vm.addr(1 + uint256(keccak256(abi.encode(seed, i, "account"))) % 1e30);
            amounts[i] = uint256(keccak256(abi.encode(seed, i, "amount"))) >> (i * 16);
        }
        _assertSameTree(accounts, amounts);
    }

    function test_NpmJsonMatchesAbiOutput() public {
        address[] memory ops = _operators();
        uint256[] memory amounts = _oddAmounts();
        (bytes32 root, bytes32[][] memory proofs) = _npmTree(ops, amounts);
        string memory json = string(vm.ffi(_command(true, ops, amounts)));

        assertEq(vm.parseJsonBytes32(json, ".root"), root);
        for (uint256 i = 0; i < ops.length; i++) {
            string memory idx = vm.toString(i);
            assertEq(vm.parseJsonBytes32Array(json, string.concat(".proofs[", idx, "]")), proofs[i]);
            assertEq(
                vm.parseJsonBytes32(json, string.concat(".leaves[", idx, "].hash")),
                StandardMerkle.leaf(ops[i], amounts[i])
            );
            assertEq(vm.parseJsonAddress(json, string.concat(".leaves[", idx, "].account")), ops[i]);
            assertEq(
                vm.parseJsonString(json, string.concat(".leaves[", idx, "].amount")),
                vm.toString(amounts[i])
            );
        }
    }

    function test_NpmRejectsDuplicateAccount() public {
        Vm.FfiResult memory result =
            vm.tryFfi(_command(false, _addrs(operator1, operator1), _uints(1, 2)));
        assertEq(result.exitCode, 1);
        assertEq(result.stdout.length, 0);
        assertTrue(vm.contains(string(result.stderr), "duplicate account"));
    }
}
