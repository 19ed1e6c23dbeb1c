//! Keyword taxonomies: the keywords a review can be labelled with, their guidelines,
//! and the sentiment scale. Two ship built in: the seed's fashion set and NIKL ABSA.

use serde::Deserialize;

use crate::labels::LabelSet;

#[derive(Debug, Clone)]
pub struct Keyword {
    pub id: i64,
    pub name: String,
    pub position: i32,
    pub guideline: String,
}

#[derive(Debug, Clone)]
pub struct Taxonomy {
    pub id: i64,
    pub name: String,
    pub scale_min: i16,
    pub scale_max: i16,
    pub guideline_revision: i32,
    pub keywords: Vec<Keyword>,
}

/// A label set checked against a taxonomy: keyword ids with in-scale levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLabels {
    pub no_keyword: bool,
    pub labels: Vec<(i64, i16)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    #[error("unknown keyword `{0}`")]
    UnknownKeyword(String),
    #[error("sentiment {level} of `{keyword}` is outside the scale {min}..{max}")]
    OutOfScale { keyword: String, level: i16, min: i16, max: i16 },
}

impl Taxonomy {
    pub fn keyword(&self, name: &str) -> Option<&Keyword> {
        self.keywords.iter().find(|k| k.name == name)
    }

    pub fn keyword_by_id(&self, id: i64) -> Option<&Keyword> {
        self.keywords.iter().find(|k| k.id == id)
    }

    pub fn levels(&self) -> impl Iterator<Item = i16> {
        self.scale_min..=self.scale_max
    }

    pub fn resolve(&self, set: &LabelSet) -> Result<ResolvedLabels, LabelError> {
        let labels = set
            .labels()
            .iter()
            .map(|label| {
                let keyword = self
                    .keyword(&label.keyword)
                    .ok_or_else(|| LabelError::UnknownKeyword(label.keyword.clone()))?;
                self.check_level(&keyword.name, label.sentiment)?;
                Ok((keyword.id, label.sentiment))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ResolvedLabels { no_keyword: labels.is_empty(), labels })
    }

    pub fn check_level(&self, keyword: &str, level: i16) -> Result<(), LabelError> {
        if (self.scale_min..=self.scale_max).contains(&level) {
            Ok(())
        } else {
            Err(LabelError::OutOfScale {
                keyword: keyword.to_string(),
                level,
                min: self.scale_min,
                max: self.scale_max,
            })
        }
    }

    /// Back from ids to names, in taxonomy order, for display and export.
    pub fn label_set(&self, no_keyword: bool, labels: &[(i64, i16)]) -> LabelSet {
        if no_keyword || labels.is_empty() {
            return LabelSet::NoKeyword;
        }
        let mut named: Vec<_> = labels
            .iter()
            .filter_map(|(id, s)| self.keyword_by_id(*id).map(|k| (k.position, k.name.clone(), *s)))
            .collect();
        named.sort();
        LabelSet::Keywords(
            named
                .into_iter()
                .map(|(_, keyword, sentiment)| crate::labels::Label { keyword, sentiment })
                .collect(),
        )
    }
}

/// A taxonomy as written in a definition file (`reviewloop taxonomy add FILE.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct TaxonomyDefinition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub scale_min: i16,
    pub scale_max: i16,
    pub keywords: Vec<KeywordDefinition>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeywordDefinition {
    pub name: String,
    #[serde(default)]
    pub guideline: String,
}

fn kw(name: &str, guideline: &str) -> KeywordDefinition {
    KeywordDefinition { name: name.into(), guideline: guideline.into() }
}

/// The seed's fashion keywords with its guideline rules (기준 재확립).
pub fn fashion() -> TaxonomyDefinition {
    TaxonomyDefinition {
        name: "fashion".into(),
        description: "패션 리뷰 키워드 15개, 감성 5단계 (−2…2)".into(),
        scale_min: -2,
        scale_max: 2,
        keywords: vec![
            kw("배송", "배송 속도, 포장 상태, 배송 중 파손·구김. 배송 중 구겨진 경우만 배송(그 외 구김은 소재)."),
            kw("가격", "가격, 가성비, 할인에 대한 평가."),
            kw("디자인", "모양, 디테일, 예쁨 등 외관 전반. 색만 말하면 색상."),
            kw("색상", "색감, 사진과 색 차이, 색 바램."),
            kw("품질", "내구도, 보풀, 전반적 품질. 쫀쫀/짱짱은 품질(허리 밴드·신축성 어휘와 함께면 신축성). 늘어남은 내구도 문제일 때만 품질."),
            kw("사이즈", "정사이즈 여부, 크고 작음, 치수."),
            kw("신축성", "늘어나는 정도, 밴딩. 쫀쫀/짱짱은 허리 밴드나 신축성 어휘와 함께일 때만. 내구도 문제가 아닌 늘어남은 신축성."),
            kw("마감처리", "바느질, 박음질, 실밥, 마감 상태. 구김은 소재나 마감처리."),
            kw("소재", "원단, 재질, 두께, 촉감. 배송 중이 아닌 구김은 소재."),
            kw("핏", "몸에 맞는 모양, 핏감, 라인."),
            kw("착용감", "입었을 때 편안함, 불편함."),
            kw("만족도", "전반적 만족, 재구매 의사, 추천."),
            kw("길이", "기장, 소매 길이."),
            kw("스타일", "코디, 분위기, 활용도."),
            kw("세탁", "세탁 후 변화, 줄어듦, 물빠짐."),
        ],
    }
}

/// NIKL 2022 ABSA's entities, each with what it covers (after the corpus's annotation
/// guide).
const NIKL_ENTITIES: [(&str, &str); 4] = [
    ("제품 전체", "제품을 통틀어 말할 때"),
    ("본품", "제품의 몸체나 내용물 자체"),
    ("패키지/구성품", "포장, 용기, 케이스, 함께 든 부속품이나 사은품"),
    ("브랜드", "제조사, 회사, 상표"),
];

/// NIKL 2022 ABSA's attributes, each with what an entity's review says of it.
const NIKL_ATTRIBUTES: [(&str, &str); 7] = [
    ("일반", "전반적인 평가(좋다, 만족, 추천, 재구매)"),
    ("가격", "가격, 가성비, 할인"),
    ("디자인", "디자인, 모양, 색상, 외관"),
    ("품질", "품질, 성능, 효과, 내구성, 기능"),
    ("편의성", "사용의 편리함, 간편함, 휴대성"),
    ("다양성", "종류, 색상, 구성 등 선택지의 다양함"),
    ("인지도", "인지도, 유명함, 인기, 입소문"),
];

/// NIKL 2022 ABSA: entity#attribute categories, polarity negative/neutral/positive
/// mapped to −1/0/1. Each guideline says what the attribute and the entity cover, for
/// annotators and for the keyword's anchor (score::anchors).
pub fn nikl_absa() -> TaxonomyDefinition {
    let keywords = NIKL_ENTITIES
        .iter()
        .flat_map(|&(entity, covers)| {
            NIKL_ATTRIBUTES.iter().map(move |&(attribute, says)| KeywordDefinition {
                name: format!("{entity}#{attribute}"),
                guideline: format!("{entity}의 {says}. {entity}: {covers}."),
            })
        })
        .collect();
    TaxonomyDefinition {
        name: "nikl-absa".into(),
        description: "국립국어원 2022 속성 기반 감성 분석 범주, 감성 3단계 (−1…1)".into(),
        scale_min: -1,
        scale_max: 1,
        keywords,
    }
}

pub fn builtin() -> Vec<TaxonomyDefinition> {
    vec![fashion(), nikl_absa()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Label;

    fn tiny() -> Taxonomy {
        let keywords = ["배송", "디자인"]
            .iter()
            .enumerate()
            .map(|(i, n)| Keyword {
                id: i as i64 + 10,
                name: n.to_string(),
                position: i as i32,
                guideline: String::new(),
            })
            .collect();
        Taxonomy { id: 1, name: "t".into(), scale_min: -2, scale_max: 2, guideline_revision: 1, keywords }
    }

    #[test]
    fn labels_resolve_to_keyword_ids_and_back_in_taxonomy_order() {
        let t = tiny();
        let set = LabelSet::parse_compact("디자인1, 배송-1").unwrap().unwrap();
        let resolved = t.resolve(&set).unwrap();
        assert_eq!(resolved.labels, vec![(11, 1), (10, -1)]);
        assert_eq!(t.label_set(false, &resolved.labels).to_compact(), "배송-1, 디자인1");
    }

    #[test]
    fn unknown_keywords_and_out_of_scale_levels_are_refused() {
        let t = tiny();
        let unknown = LabelSet::Keywords(vec![Label { keyword: "향".into(), sentiment: 1 }]);
        assert_eq!(t.resolve(&unknown), Err(LabelError::UnknownKeyword("향".into())));
        let loud = LabelSet::Keywords(vec![Label { keyword: "배송".into(), sentiment: 3 }]);
        assert!(matches!(t.resolve(&loud), Err(LabelError::OutOfScale { level: 3, .. })));
    }

    #[test]
    fn builtin_taxonomies_match_the_seed_and_nikl() {
        assert_eq!(fashion().keywords.len(), 15);
        assert_eq!(nikl_absa().keywords.len(), 28);
        let package = nikl_absa().keywords.into_iter().find(|k| k.name == "패키지/구성품#디자인").unwrap();
        assert_eq!(
            package.guideline,
            "패키지/구성품의 디자인, 모양, 색상, 외관. 패키지/구성품: 포장, 용기, 케이스, 함께 든 부속품이나 사은품."
        );
    }
}
