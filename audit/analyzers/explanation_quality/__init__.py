"""Explanation quality: are the explanations true (faithfulness curves, randomization sanity check,
agreement between methods)?"""
