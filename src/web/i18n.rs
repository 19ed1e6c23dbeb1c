//! The UI's two languages. Korean is the default; English is one click away and
//! remembered in a cookie.

use actix_web::HttpRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ko,
    En,
}

pub const LANG_COOKIE: &str = "rl_lang";

impl Lang {
    pub fn from_request(req: &HttpRequest) -> Lang {
        match req.cookie(LANG_COOKIE).as_ref().map(|c| c.value()) {
            Some("en") => Lang::En,
            _ => Lang::Ko,
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "ko" => Some(Lang::Ko),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn tr(self) -> &'static Tr {
        match self {
            Lang::Ko => &KO,
            Lang::En => &EN,
        }
    }
}

/// Every string the pages show. A struct, not a map, so a missing translation is a
/// compile error.
pub struct Tr {
    pub code: &'static str,
    pub other_code: &'static str,
    pub other_name: &'static str,
    pub app_title: &'static str,
    pub login: &'static str,
    pub logout: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub login_failed: &'static str,
    pub nav_annotate: &'static str,
    pub nav_overview: &'static str,
    pub nav_rounds: &'static str,
    pub nav_import: &'static str,
    pub nav_users: &'static str,
    pub my_rounds: &'static str,
    pub no_rounds: &'static str,
    pub start: &'static str,
    pub round_finished: &'static str,
    pub review: &'static str,
    pub mall: &'static str,
    pub category: &'static str,
    pub keywords: &'static str,
    pub sentiment: &'static str,
    pub no_keyword: &'static str,
    pub submit: &'static str,
    pub skip: &'static str,
    pub back: &'static str,
    pub guideline: &'static str,
    pub progress: &'static str,
    pub per_hour: &'static str,
    pub shortcuts: &'static str,
    pub shortcuts_help: &'static str,
    pub correcting: &'static str,
    pub choose_something: &'static str,
    pub both_chosen: &'static str,
    pub reviews: &'static str,
    pub labelled: &'static str,
    pub label_frequency: &'static str,
    pub rounds: &'static str,
    pub name: &'static str,
    pub size: &'static str,
    pub sampling: &'static str,
    pub sampling_random: &'static str,
    pub sampling_proportional: &'static str,
    /// Heading of the strategy quota fields of the round form.
    pub quotas: &'static str,
    pub quotas_hint: &'static str,
    pub strategy_keyword_boundary: &'static str,
    pub strategy_sentiment_uncertainty: &'static str,
    pub strategy_rare_tokens: &'static str,
    pub strategy_cluster_outliers: &'static str,
    pub strategy_random: &'static str,
    pub group_by: &'static str,
    pub double_share: &'static str,
    pub annotators_hint: &'static str,
    pub seed: &'static str,
    pub create: &'static str,
    pub status: &'static str,
    pub items: &'static str,
    pub done: &'static str,
    pub close: &'static str,
    pub taxonomy: &'static str,
    pub file: &'static str,
    pub format: &'static str,
    pub label_source: &'static str,
    pub upload: &'static str,
    pub imported: &'static str,
    pub duplicates: &'static str,
    pub updated: &'static str,
    pub rejected: &'static str,
    pub labels_added: &'static str,
    pub warnings: &'static str,
    pub line: &'static str,
    pub reason: &'static str,
    pub role: &'static str,
    pub add_user: &'static str,
    pub error: &'static str,
    pub keyword: &'static str,
    pub count: &'static str,
    pub err_bad_request: &'static str,
    pub err_forbidden: &'static str,
    pub err_not_found: &'static str,
    pub err_conflict: &'static str,
    pub err_internal: &'static str,
}

impl Tr {
    /// What an error status means, in this language.
    pub fn status_text(&self, status: u16) -> &'static str {
        match status {
            403 => self.err_forbidden,
            404 => self.err_not_found,
            409 => self.err_conflict,
            400..=499 => self.err_bad_request,
            _ => self.err_internal,
        }
    }
}

pub static KO: Tr = Tr {
    code: "ko",
    other_code: "en",
    other_name: "English",
    app_title: "리뷰루프",
    login: "로그인",
    logout: "로그아웃",
    username: "아이디",
    password: "비밀번호",
    login_failed: "아이디 또는 비밀번호가 올바르지 않습니다.",
    nav_annotate: "라벨링",
    nav_overview: "현황",
    nav_rounds: "라운드",
    nav_import: "가져오기",
    nav_users: "사용자",
    my_rounds: "내 라운드",
    no_rounds: "지금 맡은 라운드가 없습니다.",
    start: "시작",
    round_finished: "이 라운드에서 할 일을 모두 마쳤습니다. 수고하셨습니다!",
    review: "리뷰",
    mall: "몰",
    category: "카테고리",
    keywords: "키워드",
    sentiment: "감성",
    no_keyword: "해당 키워드 없음",
    submit: "제출",
    skip: "건너뛰기",
    back: "이전",
    guideline: "가이드라인",
    progress: "진행",
    per_hour: "시간당",
    shortcuts: "단축키",
    shortcuts_help: "숫자·글자: 키워드 선택 · ←/→ 또는 −/+: 감성 · ↑/↓: 키워드 이동 · Enter: 제출 · Shift+N: 키워드 없음 · Shift+S: 건너뛰기 · Shift+B: 이전 · Shift+G: 가이드라인",
    correcting: "이미 제출한 항목입니다. 다시 제출하면 수정본이 저장됩니다.",
    choose_something: "키워드를 고르거나 ‘해당 키워드 없음’을 선택하세요.",
    both_chosen: "키워드와 ‘해당 키워드 없음’을 함께 고를 수 없습니다.",
    reviews: "리뷰",
    labelled: "라벨링됨",
    label_frequency: "키워드별 라벨 빈도",
    rounds: "라운드",
    name: "이름",
    size: "개수",
    sampling: "샘플링",
    sampling_random: "무작위",
    sampling_proportional: "몰/카테고리 비율",
    quotas: "전략별 비중",
    quotas_hint: "하나라도 0보다 크면 현재 모델 점수로 고르고, 몰/카테고리 비율은 위의 기준을 따릅니다.",
    strategy_keyword_boundary: "키워드 경계",
    strategy_sentiment_uncertainty: "감성 불확실",
    strategy_rare_tokens: "희귀 토큰",
    strategy_cluster_outliers: "군집 이상치",
    strategy_random: "무작위",
    group_by: "비율 기준",
    double_share: "2인 배정 비율",
    annotators_hint: "작업자 (쉼표로 구분, 비우면 전체)",
    seed: "시드",
    create: "만들기",
    status: "상태",
    items: "항목",
    done: "완료",
    close: "닫기",
    taxonomy: "분류 체계",
    file: "파일",
    format: "형식",
    label_source: "라벨 출처",
    upload: "업로드",
    imported: "가져옴",
    duplicates: "중복",
    updated: "라벨 갱신",
    rejected: "거부",
    labels_added: "추가된 라벨",
    warnings: "경고",
    line: "줄",
    reason: "사유",
    role: "역할",
    add_user: "사용자 추가",
    error: "오류",
    keyword: "키워드",
    count: "개수",
    err_bad_request: "요청을 처리할 수 없습니다.",
    err_forbidden: "이 페이지를 사용할 권한이 없습니다.",
    err_not_found: "찾을 수 없습니다.",
    err_conflict: "다른 작업과 충돌했습니다.",
    err_internal: "서버 오류가 발생했습니다. 잠시 후 다시 시도하세요.",
};

pub static EN: Tr = Tr {
    code: "en",
    other_code: "ko",
    other_name: "한국어",
    app_title: "reviewloop",
    login: "Log in",
    logout: "Log out",
    username: "Username",
    password: "Password",
    login_failed: "Wrong username or password.",
    nav_annotate: "Annotate",
    nav_overview: "Overview",
    nav_rounds: "Rounds",
    nav_import: "Import",
    nav_users: "Users",
    my_rounds: "My rounds",
    no_rounds: "No round is assigned to you right now.",
    start: "Start",
    round_finished: "You have finished everything in this round. Thank you!",
    review: "Review",
    mall: "Mall",
    category: "Category",
    keywords: "Keywords",
    sentiment: "Sentiment",
    no_keyword: "No keyword",
    submit: "Submit",
    skip: "Skip",
    back: "Back",
    guideline: "Guideline",
    progress: "Progress",
    per_hour: "per hour",
    shortcuts: "Shortcuts",
    shortcuts_help: "digits/letters: toggle keyword · ←/→ or −/+: sentiment · ↑/↓: move between keywords · Enter: submit · Shift+N: no keyword · Shift+S: skip · Shift+B: back · Shift+G: guideline",
    correcting: "You already answered this item. Submitting again saves a correction.",
    choose_something: "Pick keywords or ‘No keyword’.",
    both_chosen: "Pick keywords or ‘No keyword’, not both.",
    reviews: "Reviews",
    labelled: "Labelled",
    label_frequency: "Label frequency per keyword",
    rounds: "Rounds",
    name: "Name",
    size: "Size",
    sampling: "Sampling",
    sampling_random: "Random",
    sampling_proportional: "Proportional to mall/category",
    quotas: "Strategy quotas",
    quotas_hint: "When any is above 0, items are picked by the serving model's scores; mall/category shares follow the grouping above.",
    strategy_keyword_boundary: "Keyword boundary",
    strategy_sentiment_uncertainty: "Sentiment uncertainty",
    strategy_rare_tokens: "Rare tokens",
    strategy_cluster_outliers: "Cluster outliers",
    strategy_random: "Random",
    group_by: "Proportional by",
    double_share: "Double-assigned share",
    annotators_hint: "Annotators (comma-separated; empty = everyone)",
    seed: "Seed",
    create: "Create",
    status: "Status",
    items: "Items",
    done: "Done",
    close: "Close",
    taxonomy: "Taxonomy",
    file: "File",
    format: "Format",
    label_source: "Label source",
    upload: "Upload",
    imported: "Imported",
    duplicates: "Duplicates",
    updated: "Labels updated",
    rejected: "Rejected",
    labels_added: "Labels added",
    warnings: "Warnings",
    line: "Line",
    reason: "Reason",
    role: "Role",
    add_user: "Add user",
    error: "Error",
    keyword: "Keyword",
    count: "Count",
    err_bad_request: "The request could not be processed.",
    err_forbidden: "Your role may not use this page.",
    err_not_found: "Not found.",
    err_conflict: "This clashed with another change.",
    err_internal: "Server error. Please try again shortly.",
};

/// A sentiment level in words, for the scales we know.
pub fn level_name(lang: Lang, min: i16, max: i16, level: i16) -> String {
    let words: &[&str] = match (lang, min, max) {
        (Lang::Ko, -2, 2) => &["매우 부정", "부정", "중립", "긍정", "매우 긍정"],
        (Lang::En, -2, 2) => &["very negative", "negative", "neutral", "positive", "very positive"],
        (Lang::Ko, -1, 1) => &["부정", "중립", "긍정"],
        (Lang::En, -1, 1) => &["negative", "neutral", "positive"],
        _ => &[],
    };
    let word = words.get((level - min) as usize).copied().unwrap_or("");
    let number = if level > 0 { format!("+{level}") } else { level.to_string() };
    format!("{number} {word}").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_read_as_signed_numbers_with_words() {
        assert_eq!(level_name(Lang::Ko, -2, 2, -2), "-2 매우 부정");
        assert_eq!(level_name(Lang::Ko, -2, 2, 0), "0 중립");
        assert_eq!(level_name(Lang::En, -1, 1, 1), "+1 positive");
        assert_eq!(level_name(Lang::En, 0, 4, 3), "+3");
    }
}
